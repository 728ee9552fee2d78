"""The shipped lite preset: weights load, real images round-trip above a quality floor, exact sizes.

The floors come from the BSDS500 test split (scripts/lite_validate.py, docs/models.md), never from
Kodak; a broken or untrained model fails them (the C = 0 control shows the channels matter).
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsc.codec import Codec
from gsc.errors import GSCError
from gsc.eval.metrics import ms_ssim, psnr
from gsc.image import load_image, to_uint8

KODAK = Path(__file__).resolve().parents[2] / "shared/data/kodak"
needs_kodak = pytest.mark.shared_data("kodak")

# Floors: the per-image minima at C = 2 on 50 BSDS500 test images (scripts/lite_validate.py: 13.67 dB,
# MS-SSIM 0.382), rounded down. Noise-like output (a broken adapter) scores about 11 dB / 0.16.
PSNR_FLOOR = 13.5
MS_SSIM_FLOOR = 0.37


def eight_bit(image):
    return torch.from_numpy(to_uint8(image)).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def codec():
    return Codec()


def test_committed_weights_load():
    from gsc.generate.lite import LiteGenerator
    from gsc.latent.encoders import LiteLatentEncoder

    enc, gen = LiteLatentEncoder(), LiteGenerator()
    assert enc.latent_channels == gen.latent_channels == 32
    total = sum(p.numel() for m in (enc.model, gen.base, gen.adapter) for p in m.parameters())
    assert 1e6 < total < 10e6
    # The adapter was trained: its zero-initialised output layers have moved.
    assert float(gen.adapter.zero_mid.weight.detach().abs().sum()) > 0


@needs_kodak
@pytest.mark.parametrize("name", ["kodim05.png", "kodim23.png"])
def test_round_trip_meets_quality_floor(codec, name):
    captions = json.loads((KODAK / "captions.json").read_text())
    x = load_image(KODAK / name)
    data = codec.encode(x, channels=2, caption=captions[name], max_bpp=0.01)  # the operating point users run
    assert len(data) * 8 / (x.shape[1] * x.shape[2]) <= 0.01
    y = eight_bit(codec.decode(data))
    assert y.shape == x.shape
    p, m = psnr(y, x), ms_ssim(y, x)
    assert p >= PSNR_FLOOR and m >= MS_SSIM_FLOOR, (p, m)
    # Control: caption only (C = 0) must be clearly worse, or the channels carry nothing.
    y0 = eight_bit(codec.decode(codec.encode(x, channels=0, caption=captions[name])))
    assert ms_ssim(y0, x) < m - 0.05


@needs_kodak
def test_cli_round_trip_exact_size_and_deterministic(tmp_path):
    from PIL import Image

    crop = tmp_path / "crop.png"
    Image.open(KODAK / "kodim23.png").crop((100, 50, 100 + 250, 50 + 187)).save(crop)  # 250×187: not ×16
    stream, out = tmp_path / "c.gsc", tmp_path / "c.png"
    run = lambda *a: subprocess.run([sys.executable, "-m", "gsc", *map(str, a)], capture_output=True, text=True)  # noqa: E731
    r = run("encode", crop, "-o", stream, "--channels", "2", "--caption", "Two macaws.")
    assert r.returncode == 0, r.stderr
    hashes = []
    for _ in range(2):
        r = run("decode", stream, "-o", out, "-q")
        assert r.returncode == 0, r.stderr
        assert Image.open(out).size == (250, 187)
        hashes.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert hashes[0] == hashes[1]


@needs_kodak
def test_max_bpp_coarsens_the_step_until_the_stream_fits(codec):
    x = load_image(KODAK / "kodim05.png")
    kw = dict(channels=4, caption="")
    fine, coarse = codec.encode(x, **kw), codec.encode(x, step=6.0, **kw)
    assert len(coarse) < len(fine)
    pixels = x.shape[-1] * x.shape[-2]
    budget = (len(fine) + len(coarse)) / 2 * 8 / pixels  # between the default step (1.0) and the coarsest
    data = codec.encode(x, max_bpp=budget, **kw)
    assert len(data) * 8 / pixels <= budget and codec.read(data).step > 1.0
    assert codec.encode(x, max_bpp=1.0, **kw) == fine  # a loose budget keeps the step asked for
    with pytest.raises(GSCError, match="does not fit"):
        codec.encode(x, max_bpp=(len(coarse) - 2) * 8 / pixels, **kw)
