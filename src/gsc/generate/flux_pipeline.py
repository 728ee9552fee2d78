"""The FLUX receiver pipeline: caption + selected channels → image, with the frozen base and the adapter.

``FluxChannelPipeline`` is diffusers' ``FluxPipeline`` (its prompt encoding, latent packing, offload
and tiling machinery) plus one component, ``adapter`` (a :class:`FluxChannelAdapter`), and a
``__call__`` that reads as numbered steps. C = 0 (no channel sent) runs the base alone: the paper's
"Directly Gen.".
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
import torch

from diffusers import FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps
from diffusers.utils.torch_utils import get_module_execution_device

from ..bits import ceil_div
from ..errors import GSCError, StreamError
from .base import GenerationRequest, Generator
from .flux_adapter import FluxChannelAdapter, unpack_latents

STRIDE = 16  # VAE 1/8, then 2×2 packing: one token per 16×16 pixels, one per latent position


def time_shift_mu(scheduler, image_seq_len: int) -> float:
    """FLUX's resolution-dependent shift: log of the factor that moves timesteps towards noise."""
    c = scheduler.config
    return calculate_shift(image_seq_len, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
                           c.get("base_shift", 0.5), c.get("max_shift", 1.15))


def timestep_shift(scheduler, image_seq_len: int) -> float:
    """The factor s in t' = s·t / (1 + (s − 1)·t) that the scheduler applies at this many tokens.

    FLUX.1-dev's scheduler shifts by exp(μ(tokens)) (``use_dynamic_shifting``); FLUX.1-schnell's has
    dynamic shifting off and a fixed ``shift`` (1.0). Training draws its t with the same factor.
    """
    c = scheduler.config
    if c.get("use_dynamic_shifting", False):
        return math.exp(time_shift_mu(scheduler, image_seq_len))
    return float(c.get("shift", 1.0))


class FluxChannelPipeline(FluxPipeline):
    # The adapter stays out of the offload chain (as diffusers' ControlNet pipelines do): it alternates
    # with the transformer every step, so it gets its own hook, comes onto the GPU at its first call and
    # leaves when the image is done, instead of crossing the bus twice a step.
    model_cpu_offload_seq = "text_encoder->text_encoder_2->transformer->vae"
    _optional_components = ["image_encoder", "feature_extractor", "adapter"]

    def __init__(self, scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer,
                 adapter: FluxChannelAdapter | None = None, image_encoder=None, feature_extractor=None):
        super().__init__(scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer,
                         image_encoder=image_encoder, feature_extractor=feature_extractor)
        self.register_modules(adapter=adapter)

    def check_condition(self, grid: torch.Tensor, mask: torch.Tensor, height: int, width: int, steps: int) -> None:
        if height % STRIDE or width % STRIDE or height <= 0 or width <= 0:
            raise GSCError(f"height and width must be positive multiples of {STRIDE}, got {height}×{width}")
        if steps < 1:
            raise GSCError(f"steps must be at least 1, got {steps}")
        if grid.dim() != 3 or mask.shape != (grid.shape[0],):
            raise GSCError(f"condition grid must be (N, h, w) with an (N,) mask, got {tuple(grid.shape)} "
                           f"and {tuple(mask.shape)}")
        if tuple(grid.shape[-2:]) != (height // STRIDE, width // STRIDE):
            raise GSCError(f"condition grid is {grid.shape[-2]}×{grid.shape[-1]} positions; a {height}×{width} "
                           f"image has {height // STRIDE}×{width // STRIDE} tokens")
        if mask.sum() > 0:
            if self.adapter is None:
                raise GSCError("channels were sent but no adapter is loaded: pass adapter=PATH "
                               "(train one with `gsc train-adapter`)")
            if grid.shape[0] != self.adapter.config.latent_channels:
                raise GSCError(f"the adapter reads {self.adapter.config.latent_channels} latent channels, "
                               f"the stream has {grid.shape[0]}")

    @torch.no_grad()
    def __call__(self, caption: str, grid: torch.Tensor, mask: torch.Tensor, height: int, width: int,
                 steps: int, guidance: float = 3.5, generator: torch.Generator | None = None,
                 max_sequence_length: int = 512, progress: Callable[[int], None] | None = None,
                 prompt_embeds: torch.Tensor | None = None,
                 pooled_prompt_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Returns the (3, height, width) image in [0, 1] (float32, on the CPU).

        ``prompt_embeds`` / ``pooled_prompt_embeds`` (T5 sequence, pooled CLIP) replace the caption when
        given, as in FluxPipeline: training validates with its cached embeddings, the text encoders freed.
        """
        # 1. Check inputs.
        self.check_condition(grid, mask, height, width, steps)
        use_adapter = bool(mask.sum() > 0)
        device = self._execution_device
        dtype = self.transformer.dtype

        # 2. Encode the caption (T5 sequence + pooled CLIP), unless its embeddings were given.
        if prompt_embeds is not None:
            prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
            pooled_prompt_embeds = pooled_prompt_embeds.to(device=device, dtype=dtype)
        prompt_embeds, pooled, text_ids = self.encode_prompt(
            None if prompt_embeds is not None else caption, prompt_2=None, device=device,
            prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
            max_sequence_length=max_sequence_length)

        # 3. Prepare latents: the noise comes from a CPU generator, so one seed gives one image anywhere.
        latents, img_ids = self.prepare_latents(1, self.transformer.config.in_channels // 4, height, width,
                                                prompt_embeds.dtype, device, generator)
        cond_grid = grid[None].to(device=device, dtype=dtype)
        cond_mask = mask[None].to(device=device, dtype=dtype)

        # 4. Set timesteps: FLUX's schedule, shifted for this many tokens.
        sigmas = np.linspace(1.0, 1 / steps, steps)
        timesteps, _ = retrieve_timesteps(self.scheduler, steps, device, sigmas=sigmas,
                                          mu=time_shift_mu(self.scheduler, latents.shape[1]))
        self.scheduler.set_begin_index(0)
        guidance_t = (torch.full([1], guidance, device=device, dtype=torch.float32)
                      if self.transformer.config.guidance_embeds else None)

        # 5. Denoising loop: the adapter's residuals enter the frozen base at every step.
        context = dict(encoder_hidden_states=prompt_embeds, pooled_projections=pooled, img_ids=img_ids,
                       txt_ids=text_ids, guidance=guidance_t)
        for i, t in enumerate(timesteps):
            velocity = self._velocity(latents, t, cond_grid if use_adapter else None, cond_mask, context)
            latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
            if progress is not None:
                progress(i)

        # 6. Decode, and 7. post-process: [-1, 1] → [0, 1].
        image = self._decode(latents, height, width)
        return (image[0].float().cpu() / 2 + 0.5).clamp(0, 1)

    def _velocity(self, latents: torch.Tensor, t: torch.Tensor, cond_grid: torch.Tensor | None,
                  cond_mask: torch.Tensor, context: dict) -> torch.Tensor:
        """The base's velocity at ``t``, with the adapter's residuals when a condition is given."""
        timestep = (t / 1000).expand(1).to(latents.dtype)
        block_samples = single_samples = None
        if cond_grid is not None:
            block_samples, single_samples = self.adapter(latents, cond_grid, cond_mask, timestep=timestep, **context)
        return self.transformer(hidden_states=latents, timestep=timestep, controlnet_block_samples=block_samples,
                                controlnet_single_block_samples=single_samples, return_dict=False, **context)[0]

    def _decode(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Unpack the tokens, undo FLUX's latent normalisation, VAE decode: (1, 3, H, W) in [-1, 1]."""
        latents = unpack_latents(latents, height // STRIDE, width // STRIDE)
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        image = self.vae.decode(latents.to(get_module_execution_device(self.vae), self.vae.dtype), return_dict=False)[0]
        self.maybe_free_model_hooks()
        return image


# --- loading, memory options and the generator (shared by flux, flux-tiny and train-adapter) --------

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
    return ceil_div(n, stride) * stride


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
