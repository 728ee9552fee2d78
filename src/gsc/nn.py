"""Small building blocks shared by the lite models, their config, and config-carrying safetensors I/O.

Each lite model is an ``nn.Module`` + :class:`ConfigMixin` whose constructor arguments are its config.
``save_model`` writes the weights and that config into one safetensors file (config in the metadata),
so that ``load_model`` can rebuild the exact architecture without a separate JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn


class FrozenDict(dict):
    """A model's config: read-only, its keys also readable as attributes (``model.config.width``)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def _frozen(self, *args, **kwargs):
        raise TypeError("a model's config is frozen: build a new model from an edited copy instead")

    __setitem__ = __delitem__ = __setattr__ = _frozen
    update = pop = popitem = setdefault = clear = _frozen

    def __reduce__(self):  # copy.deepcopy and pickle rebuild it whole, never key by key
        return FrozenDict, (dict(self),)


def _plain(value):
    """JSON-friendly: tuples become lists (as they come back from config.json)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class ConfigMixin:
    """diffusers' ``ConfigMixin`` without diffusers (which the lite receiver does without): the constructor's
    arguments are the model's config.

    - ``@register_to_config`` on ``__init__`` records every argument, defaults included, in ``self.config``
      (a :class:`FrozenDict`); ``self.register_to_config(**kwargs)`` records them by hand (the lite models,
      whose tuples are stored as lists).
    - ``from_config(config, **overrides)`` builds the model from a config; keys starting with ``_`` and keys
      the constructor no longer takes are ignored (with a warning), and keys a config lacks take the
      constructor's defaults, so configs saved by older versions still load.
    - ``save_config(folder)`` / ``load_config(folder)``: ``config.json`` with ``_class_name``, as diffusers.
    - :func:`save_model` / :func:`load_model` keep the config inside one safetensors file instead.
    """

    config_name = "config.json"

    @property
    def config(self) -> FrozenDict:
        return FrozenDict(self.__dict__.get("_internal_dict", {}))

    def register_to_config(self, **kwargs) -> None:
        merged = {**self.__dict__.get("_internal_dict", {}), **{k: _plain(v) for k, v in kwargs.items()}}
        object.__setattr__(self, "_internal_dict", merged)


    @classmethod
    def from_config(cls, config: dict, **overrides):
        import inspect
        import warnings

        params = inspect.signature(cls.__init__).parameters
        given = {k: v for k, v in {**config, **overrides}.items() if not k.startswith("_")}
        unknown = sorted(k for k in given if k not in params)
        if unknown:
            warnings.warn(f"{cls.__name__} ignores config keys it does not take: {', '.join(unknown)}", stacklevel=2)
        return cls(**{k: v for k, v in given.items() if k in params})

    def save_config(self, folder: str | Path) -> Path:
        path = Path(folder) / self.config_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"_class_name": type(self).__name__, **self.config}, indent=2, sort_keys=True))
        return path

    @classmethod
    def load_config(cls, folder: str | Path) -> dict:
        return json.loads((Path(folder) / cls.config_name).read_text())


def register_to_config(init):
    """Decorator for ``__init__``: record every argument (defaults included) as the config, as diffusers'."""
    import functools
    import inspect

    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        self.register_to_config(**{k: v for k, v in list(bound.arguments.items())[1:]
                                   if signature.parameters[k].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                           inspect.Parameter.VAR_KEYWORD)})
    return wrapper


def save_model(model: nn.Module, path: str | Path, extra: dict | None = None,
               dtype: torch.dtype | None = None) -> None:
    """Weights and config (safetensors metadata); ``dtype`` stores floats narrower (loaded back into fp32)."""
    from safetensors.torch import save_file

    meta = {"class": type(model).__name__, "config": json.dumps(dict(model.config))}
    if extra:
        meta.update({k: json.dumps(v) for k, v in extra.items()})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(cls, path: str | Path, strict: bool = True):
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("class") != cls.__name__:
        raise ValueError(f"{path} holds a {meta.get('class')!r}, not a {cls.__name__!r}")
    model = cls.from_config(json.loads(meta["config"]))
    model.load_state_dict(load_file(str(path)), strict=strict)
    return model.eval()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 as in diffusion models)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m
