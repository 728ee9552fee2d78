"""The lite latent: the thumbnail's DCT bands, their bins and bin-consistent reconstruction, and their entropy
coding (bit-exact round trips, canonical sections, hostile sections refused, the work bound)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from gsc.color import rgb_to_ycbcr
from gsc.errors import BudgetError, StreamError
from gsc.format.bands import BandLatent, band_bits, band_work, decode_bands, encode_bands, read_band_header
from gsc.latent.lite import LiteSender, analyse
from gsc.models import thumbnail as T
from gsc.format.tables import CHROMA_RATIOS, LUMA_STEPS, SCALES, ThumbnailGeometry


def photo(h=96, w=144, seed=0) -> torch.Tensor:
    """A smooth random 'photo': low-pass noise in colour, plus an edge."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), size=(h, w),
                                        mode="bicubic", align_corners=False)[0]
    x[:, :, w // 2:] += 0.2
    return x.clamp(0, 1)


def latent_of(x, scale_code=2, luma_code=8, chroma_code=3, channels=None) -> BandLatent:
    return LiteSender().encode(x, scale_code, luma_code, chroma_code, channels).latent


def test_block_dct_is_orthonormal_and_inverted():
    p = torch.rand(2, 20, 27, dtype=torch.float64) * 255
    c = T.block_dct(p)
    assert c.shape == (2, 64, 3, 4)
    assert torch.allclose(T.block_idct(c, (20, 27)), p, atol=1e-9)
    # orthonormal: the energy of a whole block is kept (padding replicated, so compare a full block)
    assert torch.allclose(c[..., 0, 0].pow(2).sum(1), p[:, :8, :8].pow(2).sum((1, 2)), rtol=1e-9)


def test_quantized_coefficients_lie_in_their_bins():
    c = torch.randn(1, 64, 4, 5, dtype=torch.float64) * 40
    q = T.quantize(c, 16.0)
    lo, hi = T.bins(q, 16.0)
    assert bool(((c >= lo - 1e-9) & (c <= hi + 1e-9)).all())
    assert int((q == 0).sum()) > int((torch.round(c / 16) == 0).sum())  # the dead zone is wider than rounding


@pytest.mark.parametrize("scale_code,luma_code,channels", [(0, 4, None), (4, 12, 10), (9, 20, 1), (15, 31, 3)])
def test_round_trip_is_exact(scale_code, luma_code, channels):
    x = photo()
    latent = latent_of(x, scale_code, luma_code, 4, channels)
    data = encode_bands(latent, 144, 96)
    back = decode_bands(data, 144, 96)
    assert (back.scale_code, back.luma_code, back.chroma_code) == (scale_code, luma_code, 4)
    assert all(np.array_equal(a, b) for a, b in zip(back.q, latent.q))
    # the sender's price of a section is its ideal code length, within a few bytes of the real one
    assert abs(band_bits(latent, 144, 96) / 8 - len(data)) < 0.1 * len(data) + 8


def test_decoding_is_the_same_in_another_process_and_thread_count():
    x = photo(seed=3)
    data = encode_bands(latent_of(x, 1, 6), 144, 96)
    code = ("import sys, numpy as np, torch; torch.set_num_threads(1); from gsc.format.bands import decode_bands; "
            "l = decode_bands(sys.stdin.buffer.read(), 144, 96); "
            "print([int(np.abs(p).sum()) for p in l.q], l.q[0].tobytes().hex()[:64])")
    out = [subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True).stdout
           for _ in range(2)]
    here = decode_bands(data, 144, 96)
    assert out[0] == out[1]
    assert out[0].decode().startswith(str([int(np.abs(p).sum()) for p in here.q]))


def test_altered_or_extended_sections_are_refused():
    data = encode_bands(latent_of(photo(), 1, 6), 144, 96)
    with pytest.raises(StreamError):
        decode_bands(data + b"\x01", 144, 96)
    refused = 0
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        try:
            back = decode_bands(bytes(bad), 144, 96)
        except StreamError:
            refused += 1
            continue
        assert encode_bands(back, 144, 96) == bytes(bad)   # whatever decodes is canonical
    assert refused > len(data) // 2


def test_work_is_bounded_before_decoding():
    data = encode_bands(latent_of(photo(), 0, 2), 144, 96)
    (scale, c, *_), dc, ac, _ = read_band_header(data)
    work = band_work(ThumbnailGeometry(144, 96, SCALES[scale]), c, dc, ac)
    assert work > 0
    with pytest.raises(BudgetError, match="entropy-decoding work"):
        decode_bands(data, 144, 96, max_work=work - 1)
    # a header claiming huge magnitudes on a large image is refused from the header alone
    from gsc.bits import BitWriter

    w = BitWriter()
    for v, n in ((0, 4), (63, 6), (0, 5), (0, 3), (0, 3)):
        w.write(v, n)
    for _ in range(5):
        w.write_eg(4095, 1)
    with pytest.raises(BudgetError):
        decode_bands(w.to_bytes() + b"\xff" * 8, 16384, 16384, max_work=1 << 29)


def test_empty_section_is_no_latent():
    assert decode_bands(b"", 144, 96) is None


def ramp(h=128, w=192) -> torch.Tensor:
    """A smooth horizontal ramp in grey."""
    r = torch.linspace(0.1, 0.9, w).view(1, 1, w).expand(3, h, w)
    return r.clone()


def test_a_ramp_at_the_coarsest_step_has_no_plateaus():
    """Coarse steps must blur, not posterise: where only block means survive (Δ_Y = 861), the thumbnail ramp
    still rises pixel by pixel, with no jump beyond a few times the ramp's own slope, where the plain inverse
    DCT of the same bands is a staircase of flat blocks."""
    x = ramp()
    latent = latent_of(x, 3, len(LUMA_STEPS) - 1, 0)
    assert all(int(np.abs(p[1:]).sum()) == 0 for p in latent.q)         # every AC coefficient is 0
    y = latent.planes(128, 192)[0][0]                                    # Y at the thumbnail's size
    plain = T.block_idct(torch.as_tensor(latent.q[0])[None].double() * latent.steps[0], y.shape)[0]
    slope = 0.8 * 255 / y.shape[1]                                       # the true ramp, levels per pixel
    row, plain_row = y[y.shape[0] // 2], plain[y.shape[0] // 2]
    assert float(plain_row.diff().abs().max()) > 10 * slope              # the staircase the bins allow...
    assert float(row.diff().abs().max()) < 2 * slope                     # ...is not what comes back
    assert int((row.diff().abs() < 0.05 * slope).sum()) <= 2             # no flat runs
    # and the reconstruction stays consistent with what was received: each block's mean is in its DC bin
    c = T.block_dct(y[None].double())[:, :1]
    lo, hi = T.bins(torch.as_tensor(latent.q[0][:1])[None].double(), latent.steps[0])
    assert bool(((c >= lo - 1e-6) & (c <= hi + 1e-6)).all())


@pytest.mark.parametrize("bpp", [0.005, 0.01, 0.02])
def test_a_flat_colour_keeps_its_hue_at_every_budget(bpp):
    """A flat green (kodim23's background) keeps its hue through the sender's rate control: chroma is always
    sent, with its own step, so nothing rounds Cr to zero (lite v2 turned this green olive)."""
    green = torch.tensor([0.29, 0.45, 0.18]).view(3, 1, 1).expand(3, 512, 768).clone()   # a Kodak-sized image
    best = LiteSender().rate_control(green, int(bpp * 512 * 768 / 8) - 30)
    y = T.from_planes(best.latent.planes(512, 768), (512, 768))[0].clamp(0, 1)
    cb_cr = lambda v: rgb_to_ycbcr(v.mean((1, 2))[:, None, None].double())[1:, 0, 0]  # noqa: E731
    a, b = cb_cr(green), cb_cr(y)
    hue = lambda v: float(torch.atan2(v[1], v[0]))  # noqa: E731
    assert abs(hue(a) - hue(b)) < 0.05 and float((a - b).norm()) < 2 / 255, (a, b)


def test_analysis_matches_the_planes():
    x = photo()
    geometry = ThumbnailGeometry(144, 96, SCALES[2])
    coefs = analyse(x, geometry)
    assert [c.shape for c in coefs] == [(64, *geometry.blocks(p)) for p in range(3)]
