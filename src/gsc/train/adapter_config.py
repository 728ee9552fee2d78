"""``gsc train-adapter``'s settings, torch-free so that the CLI can build its options from them cheaply.

Every field is a command-line option of the same name (``--grad-accum`` for ``grad_accum``), with this
default; :mod:`.adapter_cli` reads them from here, so the defaults live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AdapterTrainConfig:
    data: str                           # image folder (subfolders too)
    captions: str | None = None         # JSON {relative path or file name: caption}; missing ones train with ""
    out: str = "runs/flux-adapter"
    preset: str = "flux-dev"            # base model, latent encoder and guidance
    model: str | None = None            # override the preset's base (HF id or local diffusers folder)
    latent_checkpoint: str | None = None  # local CompressAI checkpoint instead of the zoo download
    resolution: int = 512               # square crops, a multiple of 16
    batch: int = 1                      # per process
    grad_accum: int = 1
    lr: float = 1e-5
    warmup: int = 100
    steps: int = 10000                  # optimizer steps
    max_channels: int = 16
    p_ssim: float = 0.5
    p_coarse: float = 0.5               # share of samples at a coarser quantization step than 1
    guidance: float | None = None       # None: the preset's
    mixed_precision: str = "bf16"       # "no" or "bf16" (FLUX overflows in fp16)
    gradient_checkpointing: bool = False
    precompute: str = "text"            # "none", "text" (caption embeddings) or "all" (+ centre-crop latents)
    precompute_batch: int = 8
    workers: int = 2                    # DataLoader worker processes
    ema_decay: float = 0.999            # 0: no EMA
    validate_every: int = 500           # 0: never
    validate_images: int = 4
    validate_channels: int = 4
    validate_steps: int | None = None   # None: the preset's
    trackers: str = "jsonl,tensorboard"
    adapter_layers: int = 4             # M double-stream blocks
    adapter_single_layers: int = 2      # S single-stream blocks
    condition_dim: int = 256
    save_every: int = 500
    keep: int = 2                       # checkpoints kept
    log_every: int = 10
    seed: int = 0
    resume: bool = True
    max_sequence_length: int | None = None  # T5 tokens; None: the preset's (512, flux-tiny 32)
