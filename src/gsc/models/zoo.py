"""The zoo: gsc's shipped weights, one entry per model (its class and its file together), one loader.

The config travels inside each safetensors file (:func:`gsc.nn.save_model`), so an entry needs only the
class and the file name; there are no parallel tables of architectures, URLs and configs to drift apart.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import GSCError
from ..registry import Registry

ZOO: Registry[tuple[str, str, str]] = Registry("model")   # name → (module, class, file in the weights folder)
ZOO.register("lite-synthesis", ("gsc.models.lite", "LiteSynthesis", "lite_synthesis.safetensors"))
ZOO.register("lite-base", ("gsc.models.lite", "LiteFlowUNet", "lite_base.safetensors"))
ZOO.register("lite-adapter", ("gsc.models.lite", "LiteAdapter", "lite_adapter.safetensors"))


def weights_dir() -> Path:
    """The shipped weights (``gsc/weights``)."""
    return Path(__file__).resolve().parent.parent / "weights"


def weights_path(name: str, folder: str | Path | None = None, path: str | Path | None = None) -> Path:
    """The file of model ``name``: ``path`` when given, else its file in ``folder`` (default: the shipped
    weights); one GSCError line when it is missing."""
    path = Path(path) if path else Path(folder or weights_dir()) / ZOO[name][2]
    if not path.is_file():
        raise GSCError(f"{name} weights not found at {path}; run `gsc train-lite` or reinstall gsc")
    return path


def load(name: str, folder: str | Path | None = None, path: str | Path | None = None):
    """Model ``name`` in eval mode, built from the config stored with its weights (``path`` overrides the file)."""
    from ..nn import load_model

    module, cls, _ = ZOO[name]
    return load_model(getattr(importlib.import_module(module), cls), weights_path(name, folder, path))
