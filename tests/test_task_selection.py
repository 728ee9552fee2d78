"""Task-aware channel selection (``det-ssim``): the channels that carry the detected objects' structure."""

import pytest
import torch

from gsc.image import load_image, pad_to_multiple
from gsc.latent.selection import _structure, detection_weight, select_channels

from conftest import SHARED_DATA

BSDS_TEST = SHARED_DATA / "bsds500" / "test"
pytestmark = pytest.mark.shared_data("bsds500/test")
PERSONS = ["267036.jpg", "15011.jpg", "102062.jpg", "81066.jpg"]  # people, found by YOLOv3-tiny at ≥ 0.94


def test_weights_cover_the_detected_person():
    x = load_image(BSDS_TEST / "267036.jpg")  # one standing person, 0.98
    w = detection_weight(x, (31, 21))
    assert w.shape == (31, 21) and float(w.min()) == pytest.approx(0.1, abs=1e-5)
    assert 1.9 < float(w.max()) <= 2.1  # 0.1 + 1 + score
    # the person covers a part of the picture, not all of it
    inside = (w > 1).float().mean()
    assert 0.05 < float(inside) < 0.8


def test_prefers_the_channel_that_draws_the_objects():
    """Channel 0 keeps the luma structure inside the rider's and horse's boxes only, channel 1 outside."""
    x = load_image(BSDS_TEST / "206062.jpg")
    grid = (21, 31)
    y = _structure(x[None], grid)[0, 0]
    inside = detection_weight(x, grid) > 1
    assert 0.2 < float(inside.float().mean()) < 0.5  # the background is the larger part
    g = torch.Generator().manual_seed(0)
    latent = torch.stack([torch.where(inside, y, torch.rand(grid, generator=g)),
                          torch.where(inside, torch.rand(grid, generator=g), y)]) * 8
    assert select_channels(latent, x, 1, "det-ssim") == [0]
    assert select_channels(latent, x, 1, "ssim") == [1]


def test_equals_ssim_where_nothing_is_detected():
    x = torch.full((3, 64, 96), 0.5)
    x[:, :, 48:] = 0.6  # a flat, two-tone picture: no object
    latent = torch.randn(8, 4, 6, generator=torch.Generator().manual_seed(1))
    assert detection_weight(x, (4, 6)) is None
    for c in range(9):
        assert select_channels(latent, x, c, "det-ssim") == select_channels(latent, x, c, "ssim")


@pytest.mark.slow   # every C on real images, with YOLO
def test_every_c_is_valid_deterministic_and_travels_in_the_stream():
    """On real images through a channel-grid codec (flux-tiny's mbt2018-mean; lite v3 sends DCT bands): every
    C gives C sorted, distinct, valid indices, the same on a fresh detector run, and a receiver that does not
    know the selection reads them back from the stream. (That det-ssim differs from ssim where the objects
    matter is test_prefers_the_channel_that_draws_the_objects.)"""
    import gsc.latent.selection as selection
    from gsc.codec import Codec

    codec = Codec(preset="flux-tiny", selection="det-ssim")
    n = codec.preset.latent_channels
    for name in PERSONS[:2]:
        x = load_image(BSDS_TEST / name)
        padded = pad_to_multiple(x, 16)  # as the encoder does: analysis and selection on the padded image, Δ = 1
        y = torch.round(codec.latent_encoder.analyse(padded))
        for c in range(17):                # the paper's C = 0..16
            first = select_channels(y, padded, c, "det-ssim")
            assert first == sorted(set(first)) and len(first) == c and all(0 <= i < n for i in first)
            if c <= 4:
                selection._detection_memo.clear()  # a fresh detector run gives the same channels
                assert select_channels(y, padded, c, "det-ssim") == first
    data = codec.encode(x, channels=3, caption="")
    sent = select_channels(torch.round(codec.latent_encoder.analyse(padded) / codec.read(data).step), padded, 3,
                           "det-ssim")
    assert Codec(preset="flux-tiny").read(data).indices == sent
