"""Latent encoders: CompressAI mbt2018-mean (same class, random weights) and the shipped lite g_a."""

import sys

import pytest
import torch

from gsc.errors import GSCError
from gsc.latent.encoders import LATENT_ENCODERS


def test_mbt2018_mean_random_weights_gives_320_channels_at_one_sixteenth():
    enc = LATENT_ENCODERS.create("mbt2018-mean", quality=8, random_init_seed=0)
    assert enc.latent_channels == 320
    assert "torchvision" not in sys.modules  # imported without torchvision, stand-in removed
    y = enc.analyse(torch.rand(3, 64, 96))
    assert y.shape == (320, 4, 6)
    again = LATENT_ENCODERS.create("mbt2018-mean", quality=8, random_init_seed=0).analyse(torch.rand(3, 64, 96))
    assert again.shape == y.shape
    # Same seed → same weights, so sender and a separate receiver process agree on the tiny preset.
    a = LATENT_ENCODERS.create("mbt2018-mean", quality=8, random_init_seed=0).net.state_dict()
    b = enc.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mbt2018_mean_loads_a_local_checkpoint(tmp_path):
    enc = LATENT_ENCODERS.create("mbt2018-mean", quality=8, random_init_seed=3)
    path = tmp_path / "mbt.pth.tar"
    torch.save({"state_dict": enc.net.state_dict()}, path)
    loaded = LATENT_ENCODERS.create("mbt2018-mean", checkpoint=path)
    x = torch.rand(3, 32, 48)
    assert torch.allclose(loaded.analyse(x), enc.analyse(x))
    with pytest.raises(GSCError, match="checkpoint not found"):
        LATENT_ENCODERS.create("mbt2018-mean", checkpoint=tmp_path / "missing.pth")


def test_unknown_encoder_names_the_choices():
    with pytest.raises(GSCError, match="unknown latent encoder 'jpeg'.*lite.*mbt2018-mean"):
        LATENT_ENCODERS.create("jpeg")


def test_lite_sender_loads_g_s_through_the_zoo(tmp_path):
    """A given g_s file is the one the sender scores with; a missing one is the zoo's one-line error."""
    from gsc.models.lite import LiteSynthesis
    from gsc.nn import save_model

    torch.manual_seed(0)
    tiny = LiteSynthesis(width=8, inner_width=8, inner_blocks=1, outer_blocks=1)
    save_model(tiny, tmp_path / "g_s.safetensors")
    enc = LATENT_ENCODERS.create("lite", synthesis=tmp_path / "g_s.safetensors")
    g_s = enc.sender.synthesis
    assert type(g_s) is LiteSynthesis and g_s.config == tiny.config and not g_s.training
    assert all(torch.equal(a, b) for a, b in zip(g_s.state_dict().values(), tiny.state_dict().values(), strict=True))
    with pytest.raises(GSCError, match=r"^lite-synthesis weights not found at .*missing.safetensors; run `gsc "
                                       r"train-lite` or reinstall gsc$"):
        LATENT_ENCODERS.create("lite", synthesis=tmp_path / "missing.safetensors")
