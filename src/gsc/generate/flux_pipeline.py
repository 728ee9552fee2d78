"""The FLUX receiver pipeline: caption + selected channels → image, with the frozen base and the adapter.

``FluxChannelPipeline`` is diffusers' ``FluxPipeline`` (its prompt encoding, latent packing, offload
and tiling machinery) plus one component, ``adapter`` (a :class:`FluxChannelAdapter`), and a
``__call__`` that reads as numbered steps. C = 0 (no channel sent) runs the base alone: the paper's
"Directly Gen.".
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from diffusers import FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps
from diffusers.utils.torch_utils import get_module_execution_device

from ..errors import GSCError
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
        for i, t in enumerate(timesteps):
            timestep = (t / 1000).expand(1).to(latents.dtype)
            block_samples = single_samples = None
            if use_adapter:
                block_samples, single_samples = self.adapter(
                    latents, cond_grid, cond_mask, encoder_hidden_states=prompt_embeds, pooled_projections=pooled,
                    timestep=timestep, img_ids=img_ids, txt_ids=text_ids, guidance=guidance_t)
            velocity = self.transformer(
                hidden_states=latents, timestep=timestep, guidance=guidance_t, pooled_projections=pooled,
                encoder_hidden_states=prompt_embeds, txt_ids=text_ids, img_ids=img_ids,
                controlnet_block_samples=block_samples, controlnet_single_block_samples=single_samples,
                return_dict=False)[0]
            latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
            if progress is not None:
                progress(i)

        # 6. Decode: unpack the tokens, undo FLUX's latent normalisation, VAE decode.
        latents = unpack_latents(latents, height // STRIDE, width // STRIDE)
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        image = self.vae.decode(latents.to(get_module_execution_device(self.vae), self.vae.dtype), return_dict=False)[0]
        self.maybe_free_model_hooks()

        # 7. Post-process: [-1, 1] → [0, 1].
        return (image[0].float().cpu() / 2 + 0.5).clamp(0, 1)
