"""FLUX generators: ``flux`` (FLUX.1-dev / schnell + a trained adapter) and ``flux-tiny`` (seeded toy).

The base (transformer, VAE, T5 + CLIP text encoders, FlowMatchEulerDiscreteScheduler) comes from a
diffusers folder or Hugging Face id and stays frozen; the adapter (:mod:`.flux_adapter`) reads the
selected channels; :mod:`.flux_pipeline` runs them. The number of steps and the seed come from the
stream and the guidance from the preset, so a stream decodes to the same image on a given machine
and software stack. Any image size works: the pipeline runs at the size padded up to a multiple of
16 (one token per latent position) and the result is cropped back.

Environment overrides, for machines that keep weights locally: ``GSC_FLUX_MODEL`` replaces the
preset's base (HF id or folder) and ``GSC_FLUX_ADAPTER`` names the adapter folder when the preset
gives none.
"""

from __future__ import annotations

import os

import torch

from ..errors import GSCError, StreamError
from . import GENERATORS, GenerationRequest, Generator

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
          "float32": torch.float32, "fp32": torch.float32}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise GSCError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    return DTYPES[name]


def padded(n: int, stride: int = 16) -> int:
    return -(-n // stride) * stride


def load_adapter(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """An adapter folder written by ``save_pretrained`` (config.json + safetensors)."""
    from pathlib import Path

    from .flux_adapter import FluxChannelAdapter

    if not (Path(path) / "config.json").exists():
        raise GSCError(f"no FLUX adapter at {path} (expected a folder with config.json and safetensors weights)")
    return FluxChannelAdapter.from_pretrained(str(path), torch_dtype=dtype).eval().requires_grad_(False)


class FluxGenerator(Generator):
    """Caption + selected channels → image with a FluxChannelPipeline."""

    def __init__(self, pipe, guidance: float, max_sequence_length: int = 512, latent_channels: int = 320):
        self.pipe = pipe
        self.guidance = float(guidance)
        self.max_sequence_length = max_sequence_length
        adapter = pipe.adapter
        self.latent_channels = adapter.config.latent_channels if adapter is not None else latent_channels

    def generate(self, request: GenerationRequest, progress=None) -> torch.Tensor:
        h, w = padded(request.height), padded(request.width)
        if request.latent_channels != self.latent_channels:
            raise StreamError(f"the stream has {request.latent_channels} latent channels; this generator reads "
                              f"{self.latent_channels}")
        grid, mask = request.condition()
        if tuple(grid.shape[-2:]) != (h // 16, w // 16):
            raise StreamError(f"channel grid {tuple(grid.shape[-2:])} does not match a "
                              f"{request.width}×{request.height} image ({h // 16}×{w // 16} positions)")
        generator = torch.Generator("cpu").manual_seed(int(request.seed))
        image = self.pipe(request.caption, grid, mask, h, w, steps=int(request.steps), guidance=self.guidance,
                          generator=generator, max_sequence_length=self.max_sequence_length, progress=progress)
        return image[:, : request.height, : request.width]


def build_pipeline(components: dict, adapter, dtype: torch.dtype, cpu_offload: bool = False,
                   vae_tiling: bool = False, device: str | None = None):
    """Assemble the pipeline and apply the memory options."""
    from .flux_pipeline import FluxChannelPipeline

    pipe = FluxChannelPipeline(**components, adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    if vae_tiling:
        pipe.vae.enable_tiling()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    for module in (pipe.transformer, pipe.adapter, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        if module is not None and module.dtype != dtype:
            module.to(dtype=dtype)
    if cpu_offload:  # each model comes onto the device when called (on a CPU-only machine: a no-op)
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


def load_base(model: str, dtype: torch.dtype = torch.bfloat16) -> dict:
    """The frozen FLUX base as FluxPipeline components: an HF id or a local diffusers folder.

    ``model="tiny"`` (or ``"tiny:SEED"``) gives the seeded flux-tiny components instead.
    """
    if model == "tiny" or model.startswith("tiny:"):
        from .flux_tiny import tiny_components

        components = tiny_components(int(model.partition(":")[2] or 0))
        return {k: v.to(dtype) if isinstance(v, torch.nn.Module) and v.dtype != dtype else v
                for k, v in components.items()}
    from diffusers import FluxPipeline

    try:
        base = FluxPipeline.from_pretrained(model, torch_dtype=dtype)
    except (OSError, ValueError) as e:
        raise GSCError(f"cannot load the FLUX base {model!r} ({type(e).__name__}); download it, or point "
                       "model= / GSC_FLUX_MODEL at a local diffusers folder") from None
    components = {k: v for k, v in base.components.items() if k not in ("image_encoder", "feature_extractor")}
    for m in components.values():
        if isinstance(m, torch.nn.Module):
            m.eval().requires_grad_(False)
    return components


@GENERATORS.register("flux")
def flux_generator(model: str = "black-forest-labs/FLUX.1-dev", guidance: float = 3.5, adapter: str | None = None,
                   dtype: str = "bfloat16", cpu_offload: bool = False, vae_tiling: bool = False,
                   device: str | None = None, max_sequence_length: int = 512) -> FluxGenerator:
    model = os.environ.get("GSC_FLUX_MODEL") or model
    adapter = adapter or os.environ.get("GSC_FLUX_ADAPTER")
    dt = torch_dtype(dtype)
    components = load_base(model, dt)
    pipe = build_pipeline(components, load_adapter(adapter, dt) if adapter else None, dt, cpu_offload,
                          vae_tiling, device)
    return FluxGenerator(pipe, guidance, max_sequence_length)


@GENERATORS.register("flux-tiny")
def flux_tiny_generator(adapter: str | None = None, guidance: float = 3.5, seed: int = 0, adapter_seed: int = 1,
                        latent_channels: int = 320, dtype: str = "float32", cpu_offload: bool = False,
                        vae_tiling: bool = False, device: str | None = "cpu") -> FluxGenerator:
    """Seeded tiny FLUX; without ``adapter`` the adapter's zero layers get seeded random weights."""
    from .flux_adapter import FluxChannelAdapter
    from .flux_tiny import TINY_MAX_SEQUENCE_LENGTH, randomize_zero_layers

    components = load_base(f"tiny:{seed}", torch.float32)
    if adapter:
        net = load_adapter(adapter)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + adapter_seed)
            net = FluxChannelAdapter.from_transformer(components["transformer"], latent_channels, condition_dim=32)
        randomize_zero_layers(net, seed=seed + adapter_seed)
        net.eval().requires_grad_(False)
    pipe = build_pipeline(components, net, torch_dtype(dtype), cpu_offload, vae_tiling, device)
    return FluxGenerator(pipe, guidance, TINY_MAX_SEQUENCE_LENGTH)
