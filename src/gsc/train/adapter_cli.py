"""``gsc train-adapter``: the command. Run it under ``accelerate launch`` for multi-GPU / multi-node
(:mod:`.trainer` runs it, :mod:`.adapter` holds the method).

The options are :class:`~.adapter_config.AdapterTrainConfig`'s fields, with its defaults and types:
one option per field (``--grad-accum`` for ``grad_accum``; booleans as ``--resume/--no-resume``), so the
command and the settings cannot drift apart. ``HELP`` holds each option's help line.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

import typer

from .adapter_config import AdapterTrainConfig

HELP = {
    "data": "Image folder (subfolders too).",
    "captions": "JSON mapping relative path or file name → caption.",
    "out": "Checkpoints, log and final adapter.",
    "preset": "flux-dev | flux-schnell | flux-tiny.",
    "model": "Base override: HF id or local diffusers folder.",
    "latent_checkpoint": "Local CompressAI mbt2018-mean checkpoint (offline).",
    "resolution": "Square crop side, a multiple of 16.",
    "batch": "Samples per process per step.",
    "grad_accum": "Gradient accumulation steps.",
    "warmup": "Linear learning-rate warm-up, in steps.",
    "steps": "Optimizer steps in total (a resumed run continues).",
    "max_channels": "C is drawn from 1..this per sample.",
    "p_ssim": "Share of SSIM-chosen (vs random) index sets.",
    "p_coarse": "Share of samples quantized with a step > 1.",
    "guidance": "Guidance embedding (default: preset's).",
    "mixed_precision": "no | bf16 (fp16 overflows FLUX).",
    "precompute": "none | text (caption embeddings once, T5 freed) | all (+ centre-crop latents; no crop "
                  "augmentation).",
    "precompute_batch": "Images per batch when precomputing.",
    "workers": "DataLoader worker processes.",
    "ema_decay": "EMA of the adapter (0: none); OUT/adapter holds the EMA weights, OUT/adapter-raw the last ones.",
    "validate_every": "Validation loss and images every this many steps (0: never).",
    "validate_images": "The first this many images validate.",
    "validate_channels": "C of the validation images.",
    "validate_steps": "Sampling steps of the validation images (preset's).",
    "trackers": "Comma list: jsonl (OUT/log.jsonl) and accelerate's trackers (tensorboard, wandb, …).",
    "max_sequence_length": "T5 tokens (default: the preset's, 512).",
    "adapter_layers": "M: double-stream blocks in the adapter.",
    "adapter_single_layers": "S: single-stream blocks.",
    "condition_dim": "Width of the condition embedder.",
    "save_every": "Checkpoint every this many steps.",
    "keep": "Checkpoints kept.",
    "log_every": "Log the loss every this many steps.",
    "resume": "Continue from OUT/checkpoints.",
}


def options() -> inspect.Signature:
    """The command's signature: one typer option per field of AdapterTrainConfig."""
    hints = typing.get_type_hints(AdapterTrainConfig)
    params = []
    for f in dataclasses.fields(AdapterTrainConfig):
        default = ... if f.default is dataclasses.MISSING else f.default
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                                        default=typer.Option(default, help=HELP.get(f.name))))
    return inspect.Signature(params)


def train_adapter_command(**settings) -> None:
    """Train the FLUX adapter (base frozen) on an image folder with captions."""
    from .trainer import train_adapter

    result = train_adapter(AdapterTrainConfig(**settings))
    typer.echo(f"train-adapter: {result['steps']} steps, loss {result['first_loss']} → {result['last_loss']}; "
               f"adapter in {result['adapter']}")


train_adapter_command.__signature__ = options()


def register(app: typer.Typer) -> None:
    app.command("train-adapter")(train_adapter_command)
