"""The ``flux`` generator: FLUX.1-dev / schnell + a trained adapter (``flux-tiny`` lives in :mod:`.flux_tiny`).

This module only registers the factory, cheaply: the helpers it shares with ``flux-tiny`` and the
trainer (loading, memory options, the generator class) live in :mod:`.flux_pipeline`, which imports
diffusers.

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

from ..errors import GSCError
from .base import GENERATORS


@GENERATORS.register("flux")
def flux_generator(model: str = "black-forest-labs/FLUX.1-dev", guidance: float = 3.5, adapter: str | None = None,
                   dtype: str = "bfloat16", offload: str = "none", fp8: bool = False, vae_tiling: bool = False,
                   device: str | None = None, max_sequence_length: int = 512):
    from .flux_pipeline import OFFLOAD, FluxGenerator, build_pipeline, load_adapter, load_base, torch_dtype

    model = os.environ.get("GSC_FLUX_MODEL") or model
    adapter = adapter or os.environ.get("GSC_FLUX_ADAPTER")
    dt = torch_dtype(dtype)
    if offload not in OFFLOAD:  # before the weights load
        raise GSCError(f"unknown offload {offload!r}; choose from {', '.join(OFFLOAD)}")
    components = load_base(model, dt)
    pipe = build_pipeline(components, load_adapter(adapter, dt) if adapter else None, dt, device, offload, fp8,
                          vae_tiling)
    return FluxGenerator(pipe, guidance, max_sequence_length)

