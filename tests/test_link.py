"""benchmarks/link.py's core on one tiny layered stream (flux-tiny: seeded random models, three layers):
the link's damage, the accounting, cuts at layer boundaries and the bit-identical check."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import link  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
LAYERS = "0.01,0.014,0.018"


def test_packet_loss_zero_fills_the_middle_and_cuts_the_end():
    data = bytes(range(200))
    lost = [True, False, True, False]           # 4 packets: 64, 64, 64, 8 bytes

    class Rng:
        def random(self, n):
            return np.array([0.0 if gone else 1.0 for gone in lost[:n]])

    got = link.packet_loss(data, 0.5, Rng())
    assert got == bytes(64) + data[64:128] + bytes(64) + data[192:]
    lost[-1] = True
    assert link.packet_loss(data, 0.5, Rng()) == bytes(64) + data[64:128]   # a lost tail: a cut
    assert link.bit_errors(data, 0.0, np.random.default_rng(0)) == data
    flipped = link.bit_errors(data, 0.5, np.random.default_rng(0))
    assert len(flipped) == len(data) and flipped != data


@pytest.fixture(scope="module")
def run():
    y, x = np.mgrid[0:128, 0:192] / 192
    img = torch.from_numpy(np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y),
                                     0.3 + 0.5 * x * y]).astype(np.float32))
    args = link.arguments(["--preset", "flux-tiny", "--channels", "2", "--layers", LAYERS, "--trials", "3",
                           "--checks", "2"])
    codec, receiver = link.Codec("flux-tiny"), link.Receiver()
    return codec, receiver, img, args, link.measure(codec, receiver, img, "a gradient", args, 0)


def test_counts_add_up(run):
    codec, receiver, img, args, rec = run
    decoded = 0
    for v in ("v3", "v4"):
        for c, r in rec[v]["conditions"].items():
            t = r["tally"]
            assert t["cases"] == sum(t[k] for k in link.OUTCOMES), (v, c)
            assert t["crash"] == t["hang"] == t["wrong"] == 0, (v, c, t["errors"])
            assert t["identical"] == t["checks"] <= args.checks
            if c == "cut":
                assert t["cases"] == (rec[v]["bytes"] - 1) // link.CUT_STEP == len(r["curve"])
                assert [n for n, _ in r["curve"]] == list(range(8, rec[v]["bytes"], 8))
            else:
                assert t["cases"] == args.trials
            decoded += t["full"] + t["partial"]
    assert len(rec["v4"]["layers"]) == 3
    assert rec["v4"]["conditions"]["cut"]["tally"]["checks"] == args.checks   # partial decodes were checked
    assert 1 <= rec["generations"] < decoded      # one generation per distinct verified content
    totals = link.totals({"a": rec})
    assert sum(t["cases"] for t in totals.values()) == sum(
        r["tally"]["cases"] for v in ("v3", "v4") for r in rec[v]["conditions"].values())


def test_a_cut_at_a_layer_boundary_decodes_the_layers_before_it(run):
    codec, receiver, img, args, rec = run
    sent = link.encode(codec, img, "a gradient", args)["v4"]
    whole, _ = receiver.decode_report(sent)
    for i, (_, end) in enumerate(rec["v4"]["layers"], 1):
        outcome, picture, report, _ = link.receive(receiver, sent[:end], 60)
        assert report.decoded == i and outcome == ("full" if end == len(sent) else "partial")
        assert link.identical(receiver, sent, sent[:end], report)
        assert torch.equal(picture, whole) == (end == len(sent))
    outcome, *_ = link.receive(receiver, sent[:3], 60)
    assert outcome == "refused"


def test_a_damaged_caption_is_dropped_and_checked_against_the_stream_packed_without_it(run):
    from gsc.format import layered

    codec, receiver, img, args, _ = run
    sent = link.encode(codec, img, "a gradient", args)["v4"]
    at = layered.read(sent).header_bytes          # the caption's first byte
    damaged = sent[:at] + bytes([sent[at] ^ 0x10]) + sent[at + 1:]
    outcome, picture, report, _ = link.receive(receiver, damaged, 60)
    assert outcome == "partial" and report.caption == "damaged" and report.decoded == 3
    assert link.identical(receiver, sent, damaged, report)
    assert not torch.equal(picture, receiver.decode(sent))   # the caption conditions the picture
