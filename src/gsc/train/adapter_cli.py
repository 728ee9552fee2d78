"""``gsc train-adapter``: the command. Run it under ``accelerate launch`` for multi-GPU / multi-node
(:mod:`.trainer` runs it, :mod:`.adapter` holds the method)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train-adapter")
    def train_adapter_command(
        data: Path = typer.Option(..., "--data", help="Image folder."),
        captions: Optional[Path] = typer.Option(None, "--captions", help="JSON mapping file name → caption."),
        out: Path = typer.Option(Path("runs/flux-adapter"), "--out", help="Checkpoints, log and final adapter."),
        preset: str = typer.Option("flux-dev", "--preset", help="flux-dev | flux-schnell | flux-tiny."),
        model: Optional[str] = typer.Option(None, "--model", help="Base override: HF id or local diffusers folder."),
        latent_checkpoint: Optional[Path] = typer.Option(None, "--latent-checkpoint",
                                                         help="Local CompressAI mbt2018-mean checkpoint (offline)."),
        resolution: int = typer.Option(512, "--resolution", help="Square crop side, a multiple of 16."),
        batch: int = typer.Option(1, "--batch", help="Samples per process per step."),
        grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps."),
        lr: float = typer.Option(1e-5, "--lr"),
        warmup: int = typer.Option(100, "--warmup", help="Linear learning-rate warm-up, in steps."),
        steps: int = typer.Option(10000, "--steps", help="Optimizer steps in total (a resumed run continues)."),
        max_channels: int = typer.Option(16, "--max-channels", help="C is drawn from 1..this per sample."),
        p_ssim: float = typer.Option(0.5, "--p-ssim", help="Share of SSIM-chosen (vs random) index sets."),
        p_coarse: float = typer.Option(0.5, "--p-coarse", help="Share of samples quantized with a step > 1."),
        guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance embedding (default: preset's)."),
        mixed_precision: str = typer.Option("bf16", "--mixed-precision", help="no | bf16 (fp16 overflows FLUX)."),
        gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing/--no-gradient-checkpointing"),
        precompute: str = typer.Option("text", "--precompute", help="none | text (caption embeddings once, T5 "
                                       "freed) | all (+ centre-crop latents; no crop augmentation)."),
        precompute_batch: int = typer.Option(8, "--precompute-batch", help="Images per batch when precomputing."),
        workers: int = typer.Option(2, "--workers", help="DataLoader worker processes."),
        ema_decay: float = typer.Option(0.999, "--ema-decay", help="EMA of the adapter (0: none); OUT/adapter "
                                        "holds the EMA weights, OUT/adapter-raw the last ones."),
        validate_every: int = typer.Option(500, "--validate-every", help="Validation loss and images every this "
                                           "many steps (0: never)."),
        validate_images: int = typer.Option(4, "--validate-images", help="The first this many images validate."),
        validate_channels: int = typer.Option(4, "--validate-channels", help="C of the validation images."),
        validate_steps: Optional[int] = typer.Option(None, "--validate-steps",
                                                     help="Sampling steps of the validation images (preset's)."),
        trackers: str = typer.Option("jsonl,tensorboard", "--trackers", help="Comma list: jsonl (OUT/log.jsonl) "
                                     "and accelerate's trackers (tensorboard, wandb, …)."),
        max_sequence_length: Optional[int] = typer.Option(None, "--max-sequence-length",
                                                          help="T5 tokens (default: the preset's, 512)."),
        adapter_layers: int = typer.Option(4, "--adapter-layers", help="M: double-stream blocks in the adapter."),
        adapter_single_layers: int = typer.Option(2, "--adapter-single-layers", help="S: single-stream blocks."),
        condition_dim: int = typer.Option(256, "--condition-dim", help="Width of the condition embedder."),
        save_every: int = typer.Option(500, "--save-every", help="Checkpoint every this many steps."),
        log_every: int = typer.Option(10, "--log-every", help="Log the loss every this many steps."),
        seed: int = typer.Option(0, "--seed"),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoints."),
    ):
        """Train the FLUX adapter (base frozen) on an image folder with captions."""
        from .adapter import AdapterTrainConfig
        from .trainer import train_adapter

        cfg = AdapterTrainConfig(
            data=str(data), captions=str(captions) if captions else None, out=str(out), preset=preset, model=model,
            latent_checkpoint=str(latent_checkpoint) if latent_checkpoint else None,
            resolution=resolution, batch=batch, grad_accum=grad_accum, lr=lr, warmup=warmup, steps=steps,
            max_channels=max_channels, p_ssim=p_ssim, p_coarse=p_coarse, guidance=guidance,
            mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing, precompute=precompute,
            precompute_batch=precompute_batch, workers=workers, ema_decay=ema_decay, validate_every=validate_every,
            validate_images=validate_images, validate_channels=validate_channels, validate_steps=validate_steps,
            trackers=trackers, max_sequence_length=max_sequence_length,
            adapter_layers=adapter_layers, adapter_single_layers=adapter_single_layers, condition_dim=condition_dim,
            save_every=save_every, log_every=log_every, seed=seed, resume=resume)
        result = train_adapter(cfg)
        typer.echo(f"train-adapter: {result['steps']} steps, loss {result['first_loss']} → {result['last_loss']}; "
                   f"adapter in {result['adapter']}")
