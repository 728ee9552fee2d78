"""Codec.read on real streams: payload round trip, byte accounting, ≥ 1,000 hostile mutants, and the decode
budget on hand-built streams that ask for huge work."""

import random
import time

import numpy as np
import pytest

from gsc.codec import Codec
from gsc.errors import BudgetError, GSCError, StreamError
from gsc.testing.fuzz import fuzz, hostile_streams, mutate, sample_layered_stream, sample_stream, sample_symbols

CAPTION = "Two macaw parrots side by side, a blue and yellow one on the left and a red and green one on the right."


def test_payload_round_trip_and_byte_accounting():
    data = sample_stream(CAPTION, channels=3, size=(768, 512), seed=1)
    p = Codec().read(data)
    assert p.caption == CAPTION
    assert p.indices == [0, 1, 2] and p.latent.channels == 3
    assert all(np.array_equal(a, b) for a, b in zip(p.latent.q, sample_symbols(3, (768, 512), 1).q))
    assert p.sizes["total"] == len(data)
    assert p.sizes["header"] + p.sizes["caption"] + p.sizes["latent"] == len(data)
    assert p.sizes["header"] <= 9    # v3's 6 bytes, 2 parity bytes for its CRC, and the caption's and layer 1's checks
    info = Codec().info(data)
    assert info["bpp"] == pytest.approx(len(data) * 8 / (768 * 512))


def test_thousand_plain_v3_mutants_are_all_refused():
    data = sample_stream(CAPTION, channels=2, size=(768, 512), version=3)
    rng = random.Random(0)
    codec = Codec()
    refused = 0
    for _ in range(1200):
        m = mutate(data, rng)
        if m == data:
            continue
        with pytest.raises(StreamError):
            codec.read(m)
        refused += 1
    assert refused >= 1000


@pytest.mark.parametrize("layered", [False, True])
def test_plain_v4_mutants_are_refused_or_read_from_intact_sections_only(layered):
    # v4 drops a section that fails its check and reads the rest: nothing read may differ from the original.
    data = sample_layered_stream() if layered else sample_stream(CAPTION, channels=2, size=(768, 512))
    report = fuzz(data, 600, seed=2, resealed_share=0.0, timeout=5.0)
    assert report.cases >= 590 and not report.crashes and not report.hangs and not report.leaks
    assert report.accepted > 400   # most damage is dropped or repaired, not refused


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("preset", ["lite", "flux-tiny"])
def test_resealed_mutants_are_refused_or_parse_cleanly(preset, version):
    # With the checks recomputed, mutations reach the header parser and both entropy decoders (lite's bands,
    # the flux presets' channel grid). v3 refuses a malformed section; v4 drops it and reads the rest.
    data = sample_stream(CAPTION, channels=2, size=(240, 160), preset=preset, version=version)
    report = fuzz(data, 1100, seed=1, resealed_share=1.0, timeout=5.0)
    assert report.cases >= 1000
    assert report.crashes == [] and report.hangs == []
    assert report.refused + report.accepted == report.cases and (version == 4 or report.refused > 0)


def test_small_and_odd_sizes_round_trip():
    for seed, size in enumerate([(16, 16), (17, 33), (481, 321), (1000, 17)]):
        data = sample_stream("", channels=1, size=size, seed=seed)
        p = Codec().read(data)
        assert (p.width, p.height) == size and p.caption == ""
        latent = sample_symbols(1, size, seed)
        assert p.latent.channels == 1 and p.indices == [0]
        assert all(np.array_equal(a, b) for a, b in zip(p.latent.q, latent.q))
        q, idx = sample_symbols(1, size, seed, "flux-tiny")
        p = Codec().read(sample_stream("", channels=1, size=size, seed=seed, preset="flux-tiny"))
        assert p.q.shape == q.shape == (1, -(-size[1] // 16), -(-size[0] // 16))
        assert np.array_equal(p.q, q) and p.indices == idx


# What each hostile stream (gsc.testing.fuzz.hostile_streams) is refused by, and where: info reads the symbols (and
# must refuse what it cannot read within a second); decode also checks the image and the steps.
HOSTILE = {
    "8192², C = 0": (None, "Mpx"),
    "768×512, steps = 1000": (None, "sampling steps"),
    "8192², C = 64, m = 4095, 1-byte payload": ("entropy-decoding work", "Mpx"),
    "8192², C = 64, m = 4095, steps = 1000": ("entropy-decoding work", "Mpx"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_streams_are_refused_within_a_second(name):
    data = hostile_streams()[name]
    info_refusal, decode_refusal = HOSTILE[name]
    codec = Codec()
    codec.info(sample_stream())   # load the caption coder's tables once: a fixed start-up cost, not the stream's
    t0 = time.perf_counter()
    if info_refusal:
        with pytest.raises(BudgetError, match=info_refusal):
            codec.info(data)
    else:
        assert codec.info(data)["decode_refused"]   # info reads it, and says decode would refuse it
    with pytest.raises(BudgetError, match=decode_refusal):
        codec.decode(data)
    assert time.perf_counter() - t0 < 1.0


def test_limits_lift_for_a_trusted_sender_and_are_checked():
    data = hostile_streams()["768×512, steps = 1000"]
    codec = Codec(max_steps=1000)
    codec.check_budget(data)                  # admitted: nothing raised
    assert codec.info(data)["decode_refused"] is None
    big = hostile_streams()["8192², C = 0"]
    Codec(max_pixels=8192 * 8192).check_budget(big)
    with pytest.raises(BudgetError, match="67.1 Mpx"):
        Codec(max_pixels=8192 * 8192 - 1).check_budget(big)
    # The symbol-work limit scales with max_pixels, but no setting admits 64 bands of m = 4095 at 8192².
    with pytest.raises(BudgetError, match="entropy-decoding work"):
        Codec(max_pixels=1 << 26).read(hostile_streams()["8192², C = 64, m = 4095, 1-byte payload"])
    for bad in ({"max_pixels": 0}, {"max_pixels": (1 << 26) + 1}, {"max_steps": 0}, {"max_steps": 1001}):
        with pytest.raises(GSCError, match="--max-"):
            Codec(**bad)


def test_default_limits_admit_a_4k_stream_at_default_steps():
    data = sample_stream("A 4K photo.", channels=4, size=(3840, 2160))
    codec = Codec()
    codec.check_budget(data)
    info = codec.info(data)
    assert info["decode_refused"] is None and info["width"] == 3840 and info["channels"] == 4


def test_summary_reads_headers_only_and_says_what_a_receiver_would_refuse():
    data = sample_stream(CAPTION, channels=3, size=(768, 512), seed=2)
    codec = Codec()
    summary, info = codec.summary(data), codec.info(data)
    assert summary == {k: info[k] for k in summary}
    assert summary["decode_refused"] is None
    hostile = hostile_streams()
    big = codec.summary(hostile["8192², C = 64, m = 4095, 1-byte payload"])
    assert big["channels"] == 64 and "67.1 Mpx" in big["decode_refused"]
    lifted = Codec(max_pixels=1 << 26).summary(hostile["8192², C = 64, m = 4095, 1-byte payload"])
    assert "entropy-decoding work" in lifted["decode_refused"]
