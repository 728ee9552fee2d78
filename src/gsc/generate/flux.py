"""The ``flux`` generator: FLUX.1-dev / schnell + a trained adapter (``flux-tiny`` lives in :mod:`.flux_tiny`).

The base (transformer, VAE, T5 + CLIP text encoders, FlowMatchEulerDiscreteScheduler) comes from a
diffusers folder or Hugging Face id and stays frozen; the adapter (:mod:`.flux_adapter`) reads the
selected channels; :mod:`.flux_pipeline` runs them. The number of steps and the seed come from the
stream and the guidance from the preset, so a stream decodes to the same image on a given machine
and software stack. Any image size works: the pipeline runs at the size padded up to a multiple of
16 (one token per latent position) and the result is cropped back.

Memory options (docs/flux.md has the table): ``offload`` picks one of diffusers' offloading modes,
``fp8`` stores the transformer's and adapter's weights in fp8 (diffusers' layerwise casting) and
computes in ``dtype``, ``vae_tiling`` decodes large images in tiles.

Environment overrides, for machines that keep weights locally: ``GSC_FLUX_MODEL`` replaces the
preset's base (HF id or folder) and ``GSC_FLUX_ADAPTER`` names the adapter folder when the preset
gives none.
"""

from __future__ import annotations

import os

import torch

from ..errors import GSCError, StreamError
from . import GENERATORS, GenerationRequest, Generator

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
OFFLOAD = ("none", "model", "sequential", "group")


def torch_dtype(name: str) -> torch.dtype:
    """bf16 or fp32; fp16 is refused: FLUX's activations overflow it."""
    if name in ("float16", "fp16", "half"):
        raise GSCError(f"FLUX overflows in float16: use bf16 or fp32, got {name!r}")
    if name not in DTYPES:
        raise GSCError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    return DTYPES[name]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str) -> torch.device:
    """``device`` as a torch.device, or one line saying why it cannot be used here."""
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise GSCError(f"device {device!r} is not usable here ({str(e).splitlines()[0]})") from None
    return dev


def padded(n: int, stride: int = 16) -> int:
    return -(-n // stride) * stride


def load_adapter(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """An adapter folder written by ``save_pretrained`` (config.json + safetensors)."""
    from pathlib import Path

    from .flux_adapter import FluxChannelAdapter

    if not (Path(path) / "config.json").exists():
        raise GSCError(f"no FLUX adapter at {path} (expected a folder with config.json and safetensors weights)")
    return FluxChannelAdapter.from_pretrained(str(path), dtype=dtype).eval().requires_grad_(False)


class FluxGenerator(Generator):
    """Caption + selected channels → image with a FluxChannelPipeline."""

    def __init__(self, pipe, guidance: float, max_sequence_length: int = 512, latent_channels: int = 320):
        if guidance and not pipe.transformer.config.guidance_embeds:
            raise GSCError(f"this FLUX base has no guidance embedding (FLUX.1-schnell): guidance={guidance} "
                           "does not apply")
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


def apply_memory_options(pipe, device: str, offload: str = "none", fp8: bool = False,
                         vae_tiling: bool = False) -> None:
    """diffusers' own memory features on an assembled pipeline (weights already in the compute dtype).

    - ``fp8``: the transformer's and the adapter's weights are stored in float8 (e4m3) and cast up to
      the compute dtype one layer at a time (``enable_layerwise_casting``): half the bf16 bytes.
    - ``offload="model"``: text encoders, transformer, VAE come onto the device one at a time; the
      adapter (outside the sequence, as in diffusers' ControlNet pipelines) comes on at its first call
      and stays for the loop instead of crossing the bus twice a step.
    - ``offload="group"``: one block at a time, the next one prefetched on a CUDA stream.
    - ``offload="sequential"``: one layer at a time; the least memory, the most transfers.
    """
    if offload not in OFFLOAD:
        raise GSCError(f"unknown offload {offload!r}; choose from {', '.join(OFFLOAD)}")
    dev = check_device(device)
    if fp8:
        for module in (pipe.transformer, pipe.adapter):
            if module is not None:
                module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=module.dtype)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if offload == "none":
        pipe.to(dev)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=dev)
    elif offload == "sequential":
        if dev.type == "cpu":  # accelerate's per-layer hooks break on "cpu:0", and there is nothing to save
            raise GSCError("offload=sequential moves weights from the CPU to an accelerator; the device is the CPU")
        pipe.enable_sequential_cpu_offload(device=dev)
    else:
        pipe.enable_group_offload(onload_device=dev, offload_device=torch.device("cpu"), offload_type="block_level",
                                  num_blocks_per_group=1, use_stream=dev.type == "cuda")


def build_pipeline(components: dict, adapter, dtype: torch.dtype, device: str | None = None, offload: str = "none",
                   fp8: bool = False, vae_tiling: bool = False):
    """Assemble the pipeline in ``dtype`` and apply the memory options."""
    from .flux_pipeline import FluxChannelPipeline

    pipe = FluxChannelPipeline(**components, adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.transformer, pipe.adapter, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        if module is not None and module.dtype != dtype:
            module.to(dtype=dtype)
    apply_memory_options(pipe, device or default_device(), offload, fp8, vae_tiling)
    return pipe


def load_base(model: str, dtype: torch.dtype = torch.bfloat16) -> dict:
    """The frozen FLUX base as FluxPipeline components: an HF id or a local diffusers folder."""
    from diffusers import FluxPipeline

    try:
        base = FluxPipeline.from_pretrained(model, dtype=dtype)
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
                   dtype: str = "bfloat16", offload: str = "none", fp8: bool = False, vae_tiling: bool = False,
                   device: str | None = None, max_sequence_length: int = 512) -> FluxGenerator:
    model = os.environ.get("GSC_FLUX_MODEL") or model
    adapter = adapter or os.environ.get("GSC_FLUX_ADAPTER")
    dt = torch_dtype(dtype)
    if offload not in OFFLOAD:  # before the weights load
        raise GSCError(f"unknown offload {offload!r}; choose from {', '.join(OFFLOAD)}")
    components = load_base(model, dt)
    pipe = build_pipeline(components, load_adapter(adapter, dt) if adapter else None, dt, device, offload, fp8,
                          vae_tiling)
    return FluxGenerator(pipe, guidance, max_sequence_length)


from . import flux_tiny  # noqa: E402,F401  (registers the flux-tiny generator)
