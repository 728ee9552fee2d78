"""The shipped lite preset: weights load, real images round-trip above quality floors (a broken model fails
them), the caption is read, no block grid and no plateaus, colours keep their hue at every budget, exact
sizes, deterministic PNGs, lite v2 streams refused in one line.

The floors come from the BSDS500 test split (docs/models.md), never from Kodak.
"""

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsc.codec import Codec
from gsc.errors import GSCError, StreamError
from gsc.eval.metrics import psnr, st_lpips
from gsc.image import load_image, to_uint8

# The trained models' behaviour takes seconds per decode on the CPU: slow (the fast tier has the lite
# wiring in tests/test_lite_tiny.py). Texture needs TAEF2's decoder; some tests read BSDS500 too.
slow = pytest.mark.slow
taef2 = pytest.mark.shared_models("taef2")
bsds500 = pytest.mark.shared_data("bsds500")

# Two BSDS500 test images under --max-bpp 0.01 with their captions: (PSNR floor, ST-LPIPS ceiling, colour drift
# ceiling), each the value measured with the shipped weights (docs/models.md, "Test floors": 23.76 dB, 0.508,
# 6.33 ΔE and 17.35 dB, 0.759, 6.59 ΔE) loosened by 0.35 dB, 0.03 and 0.7 ΔE.
FLOORS = {"test/100007.jpg": (23.4, 0.54, 7.0), "test/103006.jpg": (17.0, 0.79, 7.3)}
IMAGES = tuple(FLOORS)


def eight_bit(image):
    return torch.from_numpy(to_uint8(image)).permute(2, 0, 1).float() / 255


def drift(a, b) -> float:
    from gsc.eval.metrics import colour_drift

    return colour_drift(a, b)


@pytest.fixture(scope="module")
def codec():
    return Codec()


@pytest.fixture(scope="module")
def captions():
    from gsc.caption.captioners import load_captions

    return load_captions(Path(__file__).resolve().parents[1] / "data/captions/bsds500_test.json")


def test_committed_weights_load():
    from gsc.models import zoo

    g_s, base, adapter = (zoo.load(name) for name in ("lite-synthesis", "lite-base", "lite-adapter"))
    # Trained, not fresh: the zero-initialised output of g_s and the adapter's zero convolutions have moved.
    assert float(g_s.out.weight.abs().sum()) > 0
    assert float(adapter.zero_mid.weight.abs().sum()) > 0
    assert base.config["latent_channels"] == 32


def round_trip(codec, x, caption, bpp=0.01, generator=None):
    data = codec.encode(x, caption=caption, max_bpp=bpp)
    assert len(data) * 8 / (x.shape[1] * x.shape[2]) <= bpp
    if generator is None:
        return eight_bit(codec.decode(data))
    from gsc.generate import GenerationRequest

    p = codec.read(data)
    request = GenerationRequest(p.caption, p.channels, p.indices, 64, p.height, p.width, p.seed, p.steps, p.latent)
    return eight_bit(generator.generate(request))


@slow
@taef2
@bsds500
@pytest.mark.parametrize("key", IMAGES)
def test_round_trip_meets_quality_floors(codec, captions, shared_data, key):
    x = load_image(shared_data / "bsds500" / key)
    y = round_trip(codec, x, captions[key])
    assert y.shape == x.shape
    p, s, d = psnr(y, x), st_lpips(y, x), drift(y, x)
    floor, ceiling, drift_ceiling = FLOORS[key]
    assert p >= floor and s <= ceiling and d <= drift_ceiling, (p, s, d)


@slow
@taef2
@bsds500
def test_a_broken_model_fails_the_floors(codec, captions, shared_data):
    """The floors can fail: the same stream through an untrained g_s (its output layer at a fresh layer's random
    init, not zero: a zero one is the bicubic upscale), adapter and base."""
    from gsc.generate.lite import LiteGenerator
    from gsc.models.lite import LiteAdapter, LiteFlowUNet, LiteSynthesis

    key = IMAGES[0]
    x = load_image(shared_data / "bsds500" / key)
    broken = LiteGenerator()
    torch.manual_seed(0)
    base, adapter, decoder = broken.flow()
    broken.g_s = LiteSynthesis(**broken.g_s.config).eval()
    broken.g_s.out.reset_parameters()
    broken._flow = (LiteFlowUNet(**base.config).eval(), LiteAdapter(**adapter.config).eval(), decoder)
    y = round_trip(codec, x, captions[key], generator=broken)
    floor, ceiling, drift_ceiling = FLOORS[key]
    assert psnr(y, x) < floor or st_lpips(y, x) > ceiling or drift(y, x) > drift_ceiling


@slow
@taef2
@bsds500
def test_the_caption_is_read(codec, shared_data):
    """Same bands, different captions → different images (g_s and the generator read the caption)."""
    x = load_image(shared_data / "bsds500" / IMAGES[0])
    a = codec.decode(codec.encode(x, caption="A red barn under a bright blue sky.", max_bpp=0.005,
                                  caption_policy="keep"))
    b = codec.decode(codec.encode(x, caption="A dark green forest at night.", max_bpp=0.005, caption_policy="keep"))
    assert (a - b).abs().mean() > 1e-3


def grid_strength(image: torch.Tensor, period: float) -> float:
    """How periodic the image's edges are at ``period`` pixels (any positive real): the mean absolute luma step
    between neighbours, folded by phase (position mod period) into one-pixel bins, max over mean, across columns
    and across rows. About 1 means no periodic pattern; block edges at that period give much more."""
    y = (image * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).double()
    out = []
    for d in (y.diff(dim=1).abs(), y.diff(dim=0).abs().T):
        bins = max(8, round(period))
        phase = ((torch.arange(d.shape[1]) + 0.5) % period / period * bins).long().clamp(max=bins - 1)
        profile = torch.zeros(bins, dtype=torch.float64).index_add_(0, phase, d.mean(0))
        profile /= torch.bincount(phase, minlength=bins).clamp_min(1)
        out.append(float(profile.max() / profile.mean()))
    return max(out)


@slow
@taef2
@bsds500
def test_no_block_grid(codec, captions, shared_data):
    """The output's edges are no more periodic than the input's at the thumbnail's block size (8·f pixels)
    nor at TAEF2's 16 pixels."""
    key = IMAGES[1]
    x = load_image(shared_data / "bsds500" / key)
    data = codec.encode(x, caption=captions[key], max_bpp=0.01)
    y = eight_bit(codec.decode(data))
    for period in (8 * codec.info(data)["scale"], 16):
        limit = max(1.5, 1.25 * grid_strength(x, period))
        assert grid_strength(y, period) < limit, (period, grid_strength(y, period), grid_strength(x, period))
        edges = ((torch.arange(x.shape[-1]) % period) < 1).float() * 0.1   # the measure sees a grid
        assert grid_strength((x + edges).clamp(0, 1), period) > limit


# Version 4's header takes 2 of the 24 bytes from the latent, and with 16 bytes lite's rate control picks a
# 32× thumbnail (10 % flat pixels). It is not the container: version 3 under a budget of 21–23 bytes fails the
# same way (10 %), and under 25 bytes too (5.2 %); only its 18-byte latent at 24 bytes passes. Lite's rate control must fix this before lite
# writes version 4 (docs/stream-format.md, "Which version is written").
V4_RAMP = pytest.mark.xfail(strict=True, reason="lite's rate control at a 16-byte latent: a 32× thumbnail")


@slow
@taef2
@pytest.mark.parametrize("version", [3, pytest.param(4, marks=V4_RAMP)])
def test_a_ramp_comes_back_without_plateaus(codec, version):
    """A smooth ramp at the smallest budget comes back rising pixel by pixel: no flat runs, no jump beyond a few
    times the ramp's own slope (lite v2 gave flat patches with hard edges), in either container."""
    h, w = 256, 384
    x = torch.linspace(0.15, 0.85, w).view(1, 1, w).expand(3, h, w) * torch.tensor([1.0, 0.9, 0.7]).view(3, 1, 1)
    y = codec.decode(codec.encode(x.clone(), caption="", max_bpp=0.002, version=version))
    row = (y[:, h // 2] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1)).sum(0)
    slope = float((x[:, 0, -1] - x[:, 0, 0]).mul(torch.tensor([0.299, 0.587, 0.114])).sum()) / w
    steps = row.diff()
    assert float(steps.abs().max()) < 4 * slope, float(steps.abs().max()) / slope
    assert float((steps < 0.1 * slope).float().mean()) < 0.05      # almost every pixel rises


@slow
@taef2
@pytest.mark.parametrize("bpp", [0.005, 0.01, 0.02])
def test_a_flat_colour_keeps_its_hue(codec, bpp):
    """kodim23's background green, flat, through the whole receiver at every budget: the same hue and within
    a few levels (lite v2 turned it olive)."""
    from gsc.color import rgb_to_ycbcr

    green = torch.tensor([0.29, 0.45, 0.18]).view(3, 1, 1).expand(3, 256, 384).clone()
    y = codec.decode(codec.encode(green, caption="A flat green background.", max_bpp=bpp))
    a, b = (rgb_to_ycbcr(v.double().mean((1, 2)).view(1, 3, 1, 1))[0, 1:, 0, 0] for v in (green, y))
    assert abs(math.atan2(b[1], b[0]) - math.atan2(a[1], a[0])) < 0.05 and float((a - b).norm()) < 3 / 255, (a, b)
    assert float((y - green).abs().mean()) < 4 / 255


@slow
@taef2
@bsds500
def test_rate_control_fits_and_spends_more_bits_on_more_quality(codec, captions, shared_data):
    key = IMAGES[0]
    x = load_image(shared_data / "bsds500" / key)
    pixels = x.shape[1] * x.shape[2]
    out = []
    for budget in (0.005, 0.02):
        data = codec.encode(x, caption=captions[key], max_bpp=budget)
        assert len(data) * 8 / pixels <= budget
        out.append((len(data), psnr(eight_bit(codec.decode(data)), x)))
    assert out[1][0] > 2 * out[0][0] and out[1][1] > out[0][1] + 0.5, out


@slow
@taef2
@bsds500
def test_fewer_channels_and_the_steps_option(codec, shared_data):
    x = load_image(shared_data / "bsds500" / IMAGES[0])
    data = codec.encode(x, channels=3, caption="", max_bpp=0.01)
    assert codec.info(data)["channels"] == 3
    with pytest.raises(GSCError, match="--step applies to the flux presets"):
        codec.encode(x, step=2.0, max_bpp=0.01)
    with pytest.raises(GSCError, match="nothing fits"):
        codec.encode(x, caption="A very long caption " * 20, max_bpp=0.001, caption_policy="keep")


@slow
@taef2
@bsds500
def test_caption_policy(codec, shared_data):
    x = load_image(shared_data / "bsds500" / IMAGES[0])
    caption = "A stone bridge over a river, with trees on both banks, a grey sky, and a small boat moored under the arch."
    kept, dropped = (codec.encode(x, caption=caption, max_bpp=0.005, caption_policy=p) for p in ("keep", "drop"))
    assert codec.info(kept)["caption"] == caption and codec.info(dropped)["caption"] == ""
    assert codec.info(dropped)["latent_bytes"] > codec.info(kept)["latent_bytes"]
    # auto: 96 bytes at 0.005 bpp for 481×321; this caption takes over 15 % of them, so it goes
    assert codec.info(codec.encode(x, caption=caption, max_bpp=0.005, caption_policy="auto"))["caption"] == ""
    assert codec.info(codec.encode(x, caption=caption, max_bpp=0.05, caption_policy="auto"))["caption"] == caption
    with pytest.raises(GSCError, match="--caption-policy"):
        codec.encode(x, caption=caption, caption_policy="sometimes")


@slow
@taef2
@bsds500
def test_cli_round_trip_exact_size_and_deterministic(tmp_path, shared_data):
    """A 481×321 BSDS500 image (not a multiple of 8) comes back 481×321, and the same PNG bytes twice,
    with 1 and 2 threads (decode fixes its own thread count)."""
    import os

    from PIL import Image

    src = shared_data / "bsds500" / IMAGES[1]
    stream, out = tmp_path / "c.gsc", tmp_path / "c.png"

    def run(*a, threads="2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        return subprocess.run([sys.executable, "-m", "gsc", *map(str, a)], capture_output=True, text=True, env=env)

    r = run("encode", src, "-o", stream, "--max-bpp", "0.01", "--caption", "A stone bridge over a river.")
    assert r.returncode == 0, r.stderr
    hashes = []
    for threads in ("2", "1"):
        r = run("decode", stream, "-o", out, "-q", threads=threads)
        assert r.returncode == 0, r.stderr
        assert Image.open(out).size == Image.open(src).size == (481, 321)
        hashes.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert hashes[0] == hashes[1]


def test_lite_v2_streams_are_refused_in_one_line():
    from gsc.format import container as fmt

    old = fmt.pack(fmt.Header(0, 768, 512), b"", b"\x00\x10")     # preset id 0: lite v2
    with pytest.raises(StreamError, match="lite v2 .* no longer decodes"):
        Codec().decode(old)
