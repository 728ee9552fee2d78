"""gsc.nn.ConfigMixin does what diffusers' does: the constructor's arguments are the config, configs saved
by older versions load, and the shipped lite weights rebuild from the config inside their file."""

import copy
import json
import pickle

import pytest
import torch
from torch import nn

from gsc.nn import ConfigMixin, FrozenDict, load_model, register_to_config, save_model


class Tiny(nn.Module, ConfigMixin):
    @register_to_config
    def __init__(self, width: int = 4, depths: tuple = (1, 2), act: str = "silu"):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 1)


def test_register_to_config_records_every_argument_with_its_default():
    m = Tiny(8)
    assert m.config == {"width": 8, "depths": [1, 2], "act": "silu"}
    assert m.config.width == 8 and isinstance(m.config, FrozenDict)
    with pytest.raises(TypeError, match="frozen"):
        m.config["width"] = 3
    with pytest.raises(AttributeError):
        m.config.nothing
    assert copy.deepcopy(m).config == m.config and pickle.loads(pickle.dumps(m.config)) == m.config


def test_from_config_loads_older_configs(tmp_path):
    # An old config: a key the constructor no longer takes, diffusers-style private keys, a key missing.
    old = {"width": 6, "retired_option": 1, "_class_name": "Tiny", "_diffusers_version": "0.30"}
    with pytest.warns(UserWarning, match="retired_option"):
        m = Tiny.from_config(old)
    assert m.config == {"width": 6, "depths": [1, 2], "act": "silu"} and m.conv.out_channels == 6
    m.save_config(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == "Tiny"
    assert Tiny.from_config(Tiny.load_config(tmp_path)).config == m.config
    save_model(m, tmp_path / "m.safetensors")
    back = load_model(Tiny, tmp_path / "m.safetensors")
    assert back.config == m.config and torch.equal(back.conv.weight, m.conv.weight)


def test_a_config_recorded_by_hand_rebuilds_the_model():
    """The lite models record their arguments by hand (tuples become lists): from_config builds the same shapes."""
    from gsc.models.lite import TINY_FLOW, LiteAdapter

    m = LiteAdapter(**TINY_FLOW, hint_width=16)
    assert m.config == {"channels": [8, 8], "cond_dim": 8, "latent_channels": 32, "text_dim": 384, "hint_width": 16}
    back = LiteAdapter.from_config(m.config)
    assert back.config == m.config
    assert [p.shape for p in back.parameters()] == [p.shape for p in m.parameters()]


def test_shipped_lite_weights_rebuild_from_their_saved_configs():
    from gsc.errors import GSCError
    from gsc.models import zoo
    from gsc.models.lite import LiteAdapter, LiteFlowUNet, LiteSynthesis

    for cls, name in ((LiteFlowUNet, "lite-base"), (LiteAdapter, "lite-adapter"), (LiteSynthesis, "lite-synthesis")):
        model = zoo.load(name)  # one loader: the class from the zoo entry, the config from the file
        assert type(model) is cls and model.config and not model.training, name
    assert sorted(zoo.ZOO) == ["lite-adapter", "lite-base", "lite-synthesis"]
    with pytest.raises(GSCError, match="lite-base weights not found"):
        zoo.load("lite-base", folder="/nonexistent")
