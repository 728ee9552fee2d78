"""The lite wiring with the ``lite-tiny`` preset (seeded random tiny models, a narrow random TAEF2 decoder, the
hashed caption embedding): sender → stream → receiver with every option, on any machine, with no ../shared.

What the trained models make of real images is tests/test_lite.py's (quality floors, with the data).
"""

import numpy as np
import pytest
import torch

from gsc.codec import Codec
from gsc.errors import GSCError
from gsc.generate import GenerationRequest

pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Colour gradients with a little blurred noise: something a thumbnail can carry."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.7 - 0.4 * x * y])
    noise = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 5, 1, 2)[0]
    return (base + 0.3 * (noise - 0.5)).clamp(0, 1)


@pytest.fixture(scope="module")
def codec():
    return Codec("lite-tiny")


@pytest.fixture(scope="module")
def image():
    return smooth_image(81, 121)      # neither side a multiple of 8


@pytest.fixture(scope="module")
def stream(codec, image):
    return codec.encode(image, caption="a red door", max_bpp=0.1)


def mse(a, b) -> float:
    return float(((a - b) ** 2).mean())


def request_of(codec, data: bytes, **change) -> GenerationRequest:
    p = codec.read(data)
    fields = dict(caption=p.caption, channels=p.channels, indices=p.indices, latent_channels=64, height=p.height,
                  width=p.width, seed=p.seed, steps=p.steps, latent=p.latent)
    return GenerationRequest(**{**fields, **change})


def test_round_trip_keeps_size_budget_and_the_thumbnail(codec, image, stream):
    h, w = image.shape[-2:]
    assert len(stream) * 8 / (h * w) <= 0.1
    info = codec.info(stream)
    assert (info["width"], info["height"], info["preset"], info["caption"]) == (w, h, "lite-tiny", "a red door")
    assert info["texture"] > 0          # the generator runs, not only g_s
    y = codec.decode(stream)
    assert y.shape == image.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.equal(y, codec.decode(stream))                                  # deterministic
    flat = image.mean((1, 2), keepdim=True).expand_as(image)
    assert mse(y, image) < 0.5 * mse(flat, image)                                # the thumbnail got through


def test_sender_and_receiver_build_the_same_g_s(codec):
    from gsc.generate import GENERATORS, load_generators

    load_generators()
    sender = codec.latent_encoder.sender.synthesis
    receiver = GENERATORS.create("lite-tiny").g_s
    assert all(torch.equal(a, b) for a, b in zip(sender.state_dict().values(), receiver.state_dict().values()))
    assert float(receiver.out.weight.abs().sum()) > 0      # the zero-initialised output layer is random here


def test_texture_seed_and_steps_reach_the_image(codec, stream):
    gen = codec.generator(codec.preset)
    request = request_of(codec, stream)
    with_texture = gen.generate(request)
    request.latent.texture_code = 0                                              # the plain low band
    plain = gen.generate(request)
    request.latent.texture_code = codec.read(stream).latent.texture_code
    assert not torch.allclose(with_texture, plain, atol=1e-4)
    for change in (dict(seed=request.seed + 1), dict(steps=request.steps + 1)):
        assert not torch.allclose(gen.generate(request_of(codec, stream, **change)), with_texture, atol=1e-5)


def test_the_caption_is_read(codec, image):
    streams = [codec.encode(image, caption=c, max_bpp=0.1) for c in ("a red door", "a green field")]
    assert [codec.read(s).caption for s in streams] == ["a red door", "a green field"]
    a, b = (codec.decode(s) for s in streams)
    assert not torch.allclose(a, b, rtol=0, atol=1e-6)     # the receiver draws with it (decoding is deterministic)


def test_channels_budget_and_errors(codec, image):
    pixels = image.shape[1] * image.shape[2]
    small, large = (codec.encode(image, caption="", max_bpp=b) for b in (0.05, 0.2))
    assert len(small) < len(large) <= 0.2 * pixels / 8
    assert codec.info(codec.encode(image, channels=3, caption="", max_bpp=0.1))["channels"] == 3
    assert codec.decode(codec.encode(image, channels=3, caption="", max_bpp=0.1)).shape == image.shape
    with pytest.raises(GSCError, match="--step applies to the flux presets"):
        codec.encode(image, step=2.0, max_bpp=0.1)
    with pytest.raises(GSCError, match="nothing fits"):
        codec.encode(image, caption="A very long caption " * 20, max_bpp=0.01)
    with pytest.raises(GSCError, match="--channels"):
        codec.encode(image, channels=65, max_bpp=0.1)


def test_caption_policy(codec, image):
    caption = "A stone bridge over a river with trees on both banks and a small boat under the arch."
    kept, dropped = (codec.encode(image, caption=caption, max_bpp=0.1, caption_policy=p) for p in ("keep", "drop"))
    assert codec.info(kept)["caption"] == caption and codec.info(dropped)["caption"] == ""
    assert codec.info(dropped)["latent_bytes"] > codec.info(kept)["latent_bytes"]
    # auto: the caption's 17 bytes are over 15 % of 61 bytes (0.05 bpp), under 15 % of 245 (0.2 bpp)
    auto = [codec.encode(image, caption=caption, max_bpp=b, caption_policy="auto") for b in (0.05, 0.2)]
    assert [codec.info(a)["caption"] for a in auto] == ["", caption]
    with pytest.raises(GSCError, match="--caption-policy"):
        codec.encode(image, caption=caption, caption_policy="sometimes")


def test_a_wide_image_is_sampled_in_tiles(codec):
    from gsc.generate.lite import TILE, tiles

    x = smooth_image(16, 8 * TILE + 40, seed=1)
    assert len(list(tiles(2, (x.shape[-1] + 7) // 8))) == 2
    y = codec.decode(codec.encode(x, caption="", max_bpp=0.2))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_cli_encode_info_decode(tmp_path, image):
    from PIL import Image
    from typer.testing import CliRunner

    from gsc.cli import app
    from gsc.image import to_uint8

    Image.fromarray(to_uint8(image)).save(tmp_path / "in.png")
    runner = CliRunner()
    enc = runner.invoke(app, ["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.gsc"), "--preset",
                              "lite-tiny", "--max-bpp", "0.1", "--caption", "a red door", "--seed", "5"])
    assert enc.exit_code == 0, (enc.output, enc.exception)
    info = runner.invoke(app, ["info", str(tmp_path / "x.gsc")])
    assert info.exit_code == 0 and "lite-tiny" in info.output, info.output
    for name in ("a.png", "b.png"):
        dec = runner.invoke(app, ["decode", str(tmp_path / "x.gsc"), "-o", str(tmp_path / name), "--quiet"])
        assert dec.exit_code == 0, (dec.output, dec.exception)
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert a.shape == (81, 121, 3) and np.array_equal(a, b)
