"""lite's layers (``gsc.format.band_layers``): each prefix is the one-shot latent at its step, cuts decode the
whole layers before them, refine appends exactly what encoding with every layer gives, and (trained models,
real photos) quality never falls as layers arrive."""

import numpy as np
import pytest
import torch

from gsc.codec import Codec
from gsc.errors import BudgetError, GSCError, StreamError
from gsc.format import layered
from gsc.format.band_layers import _bounds, decode_layer, encode_layer, parents
from gsc.format.bands import BandLatent, decode_bands
from gsc.format.tables import CHROMA_RATIOS, LUMA_STEPS
from gsc.models import thumbnail as T

from test_lite_tiny import smooth_image

pytestmark = pytest.mark.usefixtures("one_thread")
BUDGETS = [0.05, 0.1, 0.2]


@pytest.fixture(scope="module")
def tiny():
    return Codec("lite-tiny")


@pytest.fixture(scope="module")
def image():
    return smooth_image(96, 160, seed=3)


@pytest.fixture(scope="module")
def stream(tiny, image):
    return tiny.encode(image, layers=BUDGETS, version=4)


def ends(data):
    return [end for _, end, _ in layered.read(data).report.layers]


def test_each_prefix_fits_its_budget_and_is_the_one_shot_latent_at_its_step(tiny, image, stream):
    pixels = image.shape[-1] * image.shape[-2]
    assert len(ends(stream)) == 3
    sender = tiny.latent_encoder.sender
    steps = []
    for end, bpp in zip(ends(stream), BUDGETS):
        assert end <= bpp * pixels / 8
        p = tiny.read(stream[:end])
        again = sender.resend(image, [p.latent])[0]       # the image's bands quantized at this prefix's step
        assert all(np.array_equal(a, b) for a, b in zip(p.latent.q, again.q))
        steps.append(p.latent.steps[:2])
    for a, b in zip(steps, steps[1:]):                 # each layer a finer step, of luma or chroma or both
        assert b[0] <= a[0] and b[1] <= a[1] and b != a


def test_every_cut_decodes_the_whole_layers_before_it(tiny, stream):
    layer_ends = ends(stream)
    whole = layered.read(stream)
    for cut in range(0, len(stream) + 1, 3):
        try:
            p = tiny.read(stream[:cut])
        except StreamError:
            assert cut < whole.header_bytes, cut
            continue
        assert p.report.decoded == sum(e <= cut for e in layer_ends), cut


def test_refine_appends_exactly_what_encoding_with_every_layer_gives(tiny, image, stream):
    first = ends(stream)[0]
    more = tiny.refine(image, stream[:first], layers=BUDGETS[1:])
    assert stream[:first] + more == stream
    step = tiny.refine(image, stream[:first], max_bpp=BUDGETS[1])     # its record says no layer follows
    a, b = tiny.read(stream[:first] + step), tiny.read(stream[:ends(stream)[1]])
    assert len(step) == ends(stream)[1] - first and a.report.intact
    assert all(np.array_equal(u, v) for u, v in zip(a.latent.q, b.latent.q))
    one = tiny.encode(image, max_bpp=BUDGETS[0], version=4)    # a one-layer stream refines at its own scale
    p = tiny.read([one, tiny.refine(image, one, max_bpp=BUDGETS[2])])
    assert p.report.intact and p.report.decoded == 2 and p.latent.steps != tiny.read(one).latent.steps
    with pytest.raises(GSCError, match="does not match this image"):
        tiny.refine(smooth_image(96, 160, seed=4), stream[:first], max_bpp=BUDGETS[1])


def test_layers_too_close_to_add_a_step_are_refused_in_one_line(tiny, image):
    with pytest.raises(GSCError, match="space them further apart"):
        tiny.encode(image, layers=[0.05, 0.0501], version=4)


def test_a_layer_round_trips_and_refuses_what_does_not_refine(tiny, stream, image):
    s = layered.read(stream)
    w, h = image.shape[-1], image.shape[-2]
    first = decode_bands(s.layers[0], w, h)
    second = decode_layer(s.layers[1], first, w, h)
    assert encode_layer(first, second, w, h) == s.layers[1]
    with pytest.raises(StreamError):
        decode_layer(s.layers[2], first, w, h)           # layer 3 refines layer 2, not layer 1
    with pytest.raises(StreamError):
        decode_layer(s.layers[1][:-1] + bytes([s.layers[1][-1] ^ 1]), first, w, h)
    with pytest.raises(BudgetError):
        decode_layer(s.layers[1], first, w, h, max_work=1)


def test_each_coefficient_lies_in_the_values_its_parent_leaves():
    rng = np.random.default_rng(0)
    coefs = torch.as_tensor(rng.laplace(0, 40, (1, 16, 12, 12)))
    for coarse, fine in [(20, 19), (20, 16), (17, 13), (13, 8), (12, 4), (9, 8)]:
        for chroma in (1, 2, 3):
            q = [T.quantize(coefs, LUMA_STEPS[c] * CHROMA_RATIOS[chroma])[0].long().numpy() for c in (coarse, fine)]
            prev = BandLatent(0, coarse, chroma, 0, [q[0]] * 3)
            par = parents(prev, fine, chroma, 16)
            _bounds([q[1]] * 3, par)                # ValueError if a value lies outside its parent's bin
            ratio = LUMA_STEPS[coarse] / LUMA_STEPS[fine]
            width = par.hi[0] - par.lo[0] + 1
            assert width.max() <= np.ceil(ratio) + 1 and width.min() >= 1, (coarse, fine)
            assert np.array_equal(np.sign(q[1])[q[0] != 0], np.sign(q[0])[q[0] != 0])


def test_the_receiver_cuts_each_bin_to_the_earlier_layers_bins():
    rng = np.random.default_rng(1)
    coefs = torch.as_tensor(rng.laplace(0, 30, (1, 10, 4, 6)))
    q0, q1 = T.quantize(coefs, 16.0), T.quantize(coefs, 9.5137)
    within = T.nested(q0, 16.0, None, q1)
    plane = T.reconstruct_plane(q1, 9.5137, (32, 48), within)
    c = T.block_dct(plane)[:, :10]
    lo, hi = T.bins(q1, 9.5137)
    lo, hi = torch.maximum(lo, within[0]), torch.minimum(hi, within[1])
    assert torch.all(c >= lo - 1e-6) and torch.all(c <= hi + 1e-6)
    assert torch.all(lo >= T.bins(q0, 16.0)[0] - 1e-9)
    assert (hi - lo).sum() < (T.bins(q1, 9.5137)[1] - T.bins(q1, 9.5137)[0]).sum()
    nonzero = q1 != 0                             # pinned at the fraction r of the cut bin from its small end
    r = T.rounding(10).expand_as(q1)[nonzero]
    small = torch.where(q1 > 0, lo, -hi)[nonzero]
    assert torch.allclose(c[nonzero].abs(), small.abs() + r * (hi - lo)[nonzero], atol=1e-6)
    zero = torch.zeros_like(q1)                     # nothing sent but zeros: the plane starts and stays flat
    flat = T.reconstruct_plane(zero, 9.5137, (32, 48), T.nested(zero, 16.0, None, zero))
    assert flat.abs().max() < 1e-9


def test_a_decoded_layer_is_reconstructed_within_the_bins_before_it(tiny, stream, image):
    s = layered.read(stream)
    w, h = image.shape[-1], image.shape[-2]
    first = decode_bands(s.layers[0], w, h)
    second = decode_layer(s.layers[1], first, w, h)
    alone = BandLatent(second.scale_code, second.luma_code, second.chroma_code, second.texture_code, second.q)
    assert second.before is first
    cut, plain = second.planes(h, w), alone.planes(h, w)
    assert any(not torch.equal(a, b) for a, b in zip(cut, plain))


def test_a_damaged_last_layer_leaves_the_first_two(tiny, stream):
    damaged = bytearray(stream)
    damaged[-3] ^= 0x10
    p = tiny.read(bytes(damaged))
    assert p.report.decoded == 2 and p.report.damaged
    assert p.latent.steps == tiny.read(stream[:ends(stream)[1]]).latent.steps


@pytest.mark.slow
@pytest.mark.shared_data("bsds500")
def test_quality_never_falls_as_layers_arrive(shared_data):
    from gsc.eval.metrics import psnr, to_8bit
    from gsc.image import load_image

    codec = Codec()
    for name in sorted((shared_data / "bsds500" / "test").glob("*.jpg"))[:2]:
        x = load_image(name)
        data = codec.encode(x, layers=[0.005, 0.01, 0.02], version=4)
        scores = [psnr(to_8bit(codec.decode(data[:end])), x) for end in ends(data)]
        assert scores[1] > scores[0] + 0.2 and scores[2] > scores[1] + 0.2, (name.name, scores)


def test_mutated_layered_lite_streams_never_crash_hang_or_leak():
    from gsc.testing.fuzz import fuzz, sample_lite_layers

    r = fuzz(sample_lite_layers(3, size=(256, 160)), 300, seed=5)
    assert r.cases > 250 and r.accepted > 0 and r.refused + r.accepted == r.cases
    assert not r.crashes and not r.hangs and not r.leaks


def test_lite_cli_layers_cut_refine_and_a_v3_stream_refused(tmp_path, capsys, image):
    from PIL import Image

    from gsc.cli import main

    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp_path / "in.png")
    enc = ["encode", str(tmp_path / "in.png"), "--preset", "lite-tiny", "-q"]
    assert main([*enc, "-o", str(tmp_path / "all.gsc"), "--layers", ",".join(map(str, BUDGETS))]) == 0
    whole = (tmp_path / "all.gsc").read_bytes()
    (tmp_path / "sent.gsc").write_bytes(whole[:ends(whole)[0]])
    assert main(["refine", str(tmp_path / "in.png"), str(tmp_path / "sent.gsc"), "-o", str(tmp_path / "more.gsc"),
                 "--layers", ",".join(map(str, BUDGETS[1:]))]) == 0
    assert (tmp_path / "sent.gsc").read_bytes() + (tmp_path / "more.gsc").read_bytes() == whole
    capsys.readouterr()
    (tmp_path / "cut.gsc").write_bytes(whole[:ends(whole)[1] + 2])
    assert main(["decode", str(tmp_path / "cut.gsc"), "-o", str(tmp_path / "cut.png"), "-q"]) == 0
    assert "layers 1–2 of 3 decoded" in capsys.readouterr().err and (tmp_path / "cut.png").exists()
    assert main([*enc, "-o", str(tmp_path / "v3.gsc"), "--max-bpp", "0.05", "--stream-version", "3"]) == 0
    capsys.readouterr()
    assert main(["refine", str(tmp_path / "in.png"), str(tmp_path / "v3.gsc"), "-o", str(tmp_path / "x.gsc"),
                 "--max-bpp", "0.1"]) == 1
    assert "--stream-version 4" in capsys.readouterr().err and not (tmp_path / "x.gsc").exists()


def test_any_damaged_byte_of_layer_1_is_repaired_by_its_parity(tiny, stream):
    # A layered stream's layer 1 carries Reed–Solomon parity: one damaged byte (of its bytes or its parity)
    # is corrected and checked by its CRC-16, and every layer decodes as if nothing happened.
    whole = layered.read(stream)
    start, end, _ = whole.report.layers[0]
    want = tiny.read(stream)
    rng = np.random.default_rng(1)
    for i in range(start, end):
        m = bytearray(stream)
        m[i] ^= int(rng.integers(1, 256))
        p = tiny.read(bytes(m))
        assert p.report.intact and p.report.layer_fixed == 1, i
        assert p.latent.steps == want.latent.steps
        assert all(np.array_equal(a, b) for a, b in zip(p.latent.q, want.latent.q))
    m = bytearray(stream)
    m[start + 2] ^= 0x08
    image, report = tiny.decode_report(bytes(m))
    assert report.decoded == 3 and "layer 1: 1 byte repaired" in report.line()
    assert torch.equal(image, tiny.decode(stream))
    m[start + 3] ^= 0x08                                  # two bytes of its one codeword: layer 1 is dropped
    with pytest.raises(StreamError, match="nothing of the picture"):
        tiny.decode_report(bytes(m))
