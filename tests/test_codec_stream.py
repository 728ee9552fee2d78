"""Codec.read on real streams: payload round trip, byte accounting, and ≥ 1,000 hostile mutants."""

import random

import numpy as np
import pytest

from gsc.codec import Codec
from gsc.errors import StreamError
from gsc.fuzz import fuzz, mutate, sample_stream

CAPTION = "Two macaw parrots side by side, a blue and yellow one on the left and a red and green one on the right."


def test_payload_round_trip_and_byte_accounting():
    data = sample_stream(CAPTION, channels=3, size=(768, 512), seed=1)
    p = Codec().read(data)
    assert p.caption == CAPTION
    assert len(p.indices) == 3 and p.q.shape == (3, 32, 48)
    assert p.sizes["total"] == len(data)
    assert p.sizes["header"] + p.sizes["caption"] + p.sizes["latent"] == len(data)
    assert p.sizes["header"] <= 6
    info = Codec().info(data)
    assert info["bpp"] == pytest.approx(len(data) * 8 / (768 * 512))


def test_thousand_plain_mutants_are_all_refused():
    data = sample_stream(CAPTION, channels=2, size=(768, 512))
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


def test_resealed_mutants_are_refused_or_parse_cleanly():
    # With the CRC recomputed, mutations reach the header parser and both entropy decoders.
    data = sample_stream(CAPTION, channels=2, size=(240, 160))
    report = fuzz(data, 1100, seed=1, resealed_share=1.0, timeout=5.0)
    assert report.cases >= 1000
    assert report.crashes == [] and report.hangs == []
    assert report.refused > 0 and report.refused + report.accepted == report.cases


def test_small_and_odd_sizes_round_trip():
    for size in [(16, 16), (17, 33), (481, 321), (1000, 17)]:
        data = sample_stream("", channels=1, size=size)
        p = Codec().read(data)
        assert (p.width, p.height) == size and p.caption == ""
        assert p.q.shape[1:] == (-(-size[1] // 16), -(-size[0] // 16))
        assert np.abs(p.q).max() >= 0
