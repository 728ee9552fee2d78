"""``gsc train-adapter``: the command. Run it under ``accelerate launch`` for multi-GPU / multi-node."""

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
        mixed_precision: str = typer.Option("bf16", "--mixed-precision", help="no | fp16 | bf16."),
        gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing/--no-gradient-checkpointing"),
        precompute: bool = typer.Option(False, "--precompute/--no-precompute",
                                        help="Encode images and captions once, then free the encoders."),
        adapter_layers: int = typer.Option(4, "--adapter-layers", help="M: double-stream blocks in the adapter."),
        adapter_single_layers: int = typer.Option(2, "--adapter-single-layers", help="S: single-stream blocks."),
        condition_dim: int = typer.Option(256, "--condition-dim", help="Width of the condition embedder."),
        save_every: int = typer.Option(500, "--save-every", help="Checkpoint every this many steps."),
        log_every: int = typer.Option(10, "--log-every", help="Log the loss every this many steps."),
        seed: int = typer.Option(0, "--seed"),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoints."),
    ):
        """Train the FLUX adapter (base frozen) on an image folder with captions."""
        from .adapter import AdapterTrainConfig, train_adapter

        cfg = AdapterTrainConfig(
            data=str(data), captions=str(captions) if captions else None, out=str(out), preset=preset, model=model,
            resolution=resolution, batch=batch, grad_accum=grad_accum, lr=lr, warmup=warmup, steps=steps,
            max_channels=max_channels, p_ssim=p_ssim, p_coarse=p_coarse, guidance=guidance,
            mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing, precompute=precompute,
            adapter_layers=adapter_layers, adapter_single_layers=adapter_single_layers, condition_dim=condition_dim,
            save_every=save_every, log_every=log_every, seed=seed, resume=resume)
        result = train_adapter(cfg)
        typer.echo(f"train-adapter: {result['steps']} steps, loss {result['first_loss']} → {result['last_loss']}; "
                   f"adapter in {result['adapter']}")
