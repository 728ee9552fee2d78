"""``gsc train-adapter``, the run: :meth:`AdapterTrainer.step` is the algorithm, the rest is bookkeeping.

Setup, in order: the frozen base on the CPU; the encodings cached once (split between the processes);
then only what a step needs on the device (the transformer and the adapter, plus the VAE and g_a when
the crops are encoded on the fly, plus T5 and CLIP when nothing is cached). Each process reads its own
slice of one seeded sample sequence (:class:`~gsc.train.data.ShardedBatches`), and every random draw
about a sample comes from that sample's seed, so P processes with batch B/P train exactly what one
process with batch B trains, and a resumed run continues the uninterrupted one.

Outputs under ``OUT``: ``checkpoints/step-NNNNNNN`` (accelerate states: the adapter in safetensors,
AdamW, schedule, EMA; written under a temporary name, then renamed), ``adapter/`` (the EMA weights when
EMA is on, in the folder format that ``adapter=PATH`` loads) and ``adapter-raw/``, ``log.jsonl`` and
``tensorboard/`` (loss, lr, validation loss and PSNR), ``validation/step-NNNNNNN/*.png``, ``config.json``
and ``cache/``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import GSCError
from ..generate.rectified_flow import sample_timesteps
from .adapter import (CACHE_PARTS, PRECOMPUTE, AdapterTrainConfig, Encoders, FluxSetup, adapter_loss,
                      draw_condition, latent_encoder_to, precompute, prepare_cache, read_captions)
from .data import AdapterSamples, CaptionedImages, FeatureCache, ShardedBatches, sample_seed

VALIDATION_T = (0.25, 0.5, 0.75)  # the validation loss averages these fixed t, so steps compare


def check_config(cfg: AdapterTrainConfig) -> None:
    """One-line errors for bad options, before anything heavy starts."""
    if cfg.mixed_precision == "fp16":
        raise GSCError("FLUX overflows in float16: use --mixed-precision bf16 (or no), got fp16")
    if cfg.mixed_precision not in ("no", "bf16"):
        raise GSCError(f"mixed precision must be no or bf16, got {cfg.mixed_precision!r}")
    if cfg.precompute not in PRECOMPUTE:
        raise GSCError(f"--precompute must be one of {', '.join(PRECOMPUTE)}, got {cfg.precompute!r}")
    for name in ("batch", "grad_accum", "steps", "max_channels", "save_every", "log_every", "keep",
                 "precompute_batch", "validate_images", "validate_channels"):
        if getattr(cfg, name) < 1:
            raise GSCError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("workers", "validate_every", "warmup"):
        if getattr(cfg, name) < 0:
            raise GSCError(f"{name} must be at least 0, got {getattr(cfg, name)}")
    if cfg.validate_steps is not None and cfg.validate_steps < 1:
        raise GSCError(f"validate_steps must be at least 1, got {cfg.validate_steps}")
    if not 0 <= cfg.ema_decay < 1:
        raise GSCError(f"ema_decay must be in [0, 1) (0: no EMA), got {cfg.ema_decay}")
    for name in ("p_ssim", "p_coarse"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise GSCError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    for name in tracker_names(cfg):
        if name == "tensorboard":
            from accelerate.utils import is_tensorboard_available

            if not is_tensorboard_available():
                raise GSCError("the tensorboard tracker is not installed: pip install tensorboard, or --trackers jsonl")
        elif name != "jsonl":
            from accelerate.utils import LoggerType

            if name not in {t.value for t in LoggerType}:
                raise GSCError(f"unknown tracker {name!r}; jsonl, or one of accelerate's: "
                               f"{', '.join(t.value for t in LoggerType if t.value != 'all')}")


def tracker_names(cfg: AdapterTrainConfig) -> list[str]:
    return [n.strip() for n in cfg.trackers.split(",") if n.strip()]


def _json_lines_tracker(path: Path):
    from accelerate.tracking import GeneralTracker, on_main_process

    class JSONLinesTracker(GeneralTracker):
        """accelerate tracker that appends ``{"step": …, values…}`` lines to a file."""

        name = "jsonl"
        requires_logging_directory = False

        def __init__(self):
            super().__init__()
            self.path = path

        @property
        def tracker(self):
            return self.path

        @on_main_process
        def log(self, values: dict, step: int | None = None, **kwargs):
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")

    return JSONLinesTracker()


def _checkpoints(out: Path) -> list[Path]:
    return sorted(p for p in (out / "checkpoints").glob("step-*") if p.name[5:].isdigit())


def _save_under(save_image, image: torch.Tensor, folder: Path, key: str) -> None:
    """``folder/KEY.png``, subfolders kept: distinct keys never share a file (``sub/b.png``, ``sub__b.png``)."""
    path = folder / f"{key}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, path)


def _publish(tmp: Path, final: Path) -> None:
    """Put a finished folder in place of ``final``."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


class AdapterTrainer:
    """Trains the FLUX adapter (base frozen) with accelerate; see :mod:`gsc.train.adapter` for the method."""

    def __init__(self, cfg: AdapterTrainConfig):
        # 0. Check the options and the data before anything heavy is imported; one preset lookup.
        check_config(cfg)
        self.cfg, self.out = cfg, Path(cfg.out)
        self.setup = FluxSetup.from_config(cfg)
        if cfg.validate_channels > self.setup.latent_channels:
            raise GSCError(f"validate_channels must be at most {self.setup.latent_channels}, "
                           f"got {cfg.validate_channels}")
        captions = read_captions(cfg.captions)
        self.images = CaptionedImages(cfg.data, captions, cfg.resolution, random_crop=True, seed=cfg.seed)
        centred = CaptionedImages(cfg.data, captions, cfg.resolution, random_crop=False)
        # 1. The processes (CPU processes on gloo where there is no CUDA) and the trackers.
        self.accelerator = acc = self._accelerator()
        self.device = acc.device
        self.weight_dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float32
        # 2. The frozen base on the CPU; the adapter starts as a copy of its first blocks (zero-init heads).
        adapter = self._base_and_adapter()
        # 3. The cache (split between the processes) and the validation samples, with the encoders on the
        #    device; then the encoders a step does not need leave it. Only self.pipe and self.encoders
        #    hold them, so that _free_encoders frees them before the transformer comes on the device.
        self._encode_cache(centred, captions)
        self._free_encoders()
        self.transformer.to(self.device)
        self.validation = self._validation_batch(centred) if cfg.validate_every and acc.is_main_process else None
        # 4. Optimizer, warm-up schedule, EMA; accelerate wraps the adapter for data parallelism.
        self._optimizer(adapter)
        del adapter
        # 5. Resume from the latest checkpoint.
        self.step_count = self._resume()
        # 6. This process's batches of the sample sequence, from where the run stands.
        sampler = ShardedBatches(len(self.images), cfg.batch, cfg.seed, acc.process_index, acc.num_processes,
                                 start=self.step_count * cfg.grad_accum)
        self.loader = torch.utils.data.DataLoader(AdapterSamples(self.images, self.cache, self.parts),
                                                  batch_sampler=sampler, num_workers=cfg.workers,
                                                  pin_memory=self.device.type == "cuda")
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        acc.init_trackers("train-adapter", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                   for k, v in asdict(cfg).items()})

    # -- setup -----------------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        cfg = self.cfg
        trackers = [_json_lines_tracker(self.out / "log.jsonl") if n == "jsonl" else n for n in tracker_names(cfg)]
        return Accelerator(
            gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision,
            cpu=not torch.cuda.is_available(), log_with=trackers or None,
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "tensorboard")))

    def _base_and_adapter(self):
        """self.pipe (the frozen base, on the CPU) and the adapter; no other reference to the base's parts."""
        from ..generate.flux_adapter import FluxChannelAdapter
        from ..generate.flux_pipeline import FluxChannelPipeline, timestep_shift

        cfg = self.cfg
        self.pipe = FluxChannelPipeline(**self.setup.components(self.weight_dtype))
        self.pipe.set_progress_bar_config(disable=True)
        self.transformer = self.pipe.transformer
        with torch.random.fork_rng(devices=[]):  # the condition embedder's init: the same in every process and run
            torch.manual_seed(cfg.seed)
            adapter = FluxChannelAdapter.from_transformer(self.transformer, self.setup.latent_channels,
                                                          cfg.adapter_layers, cfg.adapter_single_layers,
                                                          cfg.condition_dim).float().train()
        if cfg.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
            adapter.controlnet.enable_gradient_checkpointing()
        self.shift = timestep_shift(self.pipe.scheduler, (cfg.resolution // 16) ** 2)
        return adapter

    def _encode_cache(self, centred: CaptionedImages, captions: dict[str, str]) -> None:
        """self.encoders on the device, and the cache filled (split between the processes)."""
        cfg, acc, device = self.cfg, self.accelerator, self.device
        self.parts = CACHE_PARTS[cfg.precompute]
        for module in (self.pipe.vae, self.pipe.text_encoder, self.pipe.text_encoder_2):
            module.to(device)
        self.encoders = Encoders(self.pipe, self.setup.latent_encoder(), device, self.setup.max_sequence_length)
        latent_encoder_to(self.encoders.latent_encoder, device)
        self.cache = FeatureCache(self.out / "cache") if self.parts else None
        if self.parts:
            prepare_cache(self.cache, self.setup.cache_settings(cfg, captions), acc, centred)
            precompute(self.cache, self.parts, centred, self.encoders, acc, cfg.precompute_batch, cfg.workers)

    def _optimizer(self, adapter) -> None:
        """AdamW, the warm-up schedule and the EMA; accelerate wraps the adapter."""
        cfg, acc = self.cfg, self.accelerator
        optimizer = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)))
        self.adapter, self.optimizer = acc.prepare(adapter.to(self.device), optimizer)
        self.unwrapped = acc.unwrap_model(self.adapter)
        acc.register_for_checkpointing(self.schedule)  # stepped by hand, once per optimizer step
        self.ema = None
        if cfg.ema_decay > 0:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(self.unwrapped.parameters(), decay=cfg.ema_decay, foreach=True)
            acc.register_for_checkpointing(self.ema)

    def _resume(self) -> int:
        """Load the latest checkpoint when resuming; returns the step the run stands at."""
        acc, step = self.accelerator, 0
        if self.cfg.resume and _checkpoints(self.out):
            latest = _checkpoints(self.out)[-1]
            acc.load_state(str(latest))
            step = int(latest.name[5:])
            acc.print(f"train-adapter: resumed from {latest}")
        if self.ema is not None:
            self.ema.to(self.device)  # a loaded EMA state arrives on the CPU
        return step

    # -- the algorithm ---------------------------------------------------------------------------
    def step(self, batch: dict) -> torch.Tensor:
        """One micro-batch of the adapter's rectified-flow objective; returns its loss."""
        cfg, acc, wd = self.cfg, self.accelerator, self.weight_dtype
        # 1. x_0 (FLUX VAE latent, packed), y (the sender's g_a) and the caption embeddings: cached or encoded.
        b = self.encode(batch)
        x0 = b["x0"].to(wd)
        # 2. Each sample's own draws: the sender's condition ŷ_sel (Δ, C, index set), then t and ε.
        seeds = [sample_seed(cfg.seed, int(s), "draw") for s in batch["sample"]]
        grid, mask = draw_condition(b["y"], b["small"], cfg.max_channels, cfg.p_ssim, cfg.p_coarse,
                                    [random.Random(s) for s in seeds])
        draws = [torch.Generator().manual_seed(s) for s in seeds]
        t = torch.cat([sample_timesteps(1, self.shift, generator=g) for g in draws]).to(self.device)
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in draws]).to(self.device, wd)
        # 3. x_t = (1 − t)·x_0 + t·ε; loss = ‖v̂(x_t, t, caption, adapter(ŷ_sel)) − (ε − x_0)‖², base frozen.
        with acc.autocast():
            loss = adapter_loss(self.transformer, self.adapter, x0, grid.to(wd), mask, b["prompt_embeds"].to(wd),
                                b["pooled"].to(wd), t, noise, self.setup.guidance)
        # 4. Backward (gradients averaged over the processes); at the end of an accumulation window:
        #    clip, AdamW, EMA.
        acc.backward(loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(self.adapter.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if acc.sync_gradients and self.ema is not None:
            self.ema.step(self.unwrapped.parameters())
        return loss.detach()

    def encode(self, batch: dict) -> dict:
        """The batch with what the cache does not hold encoded, its tensors on the device."""
        out = dict(batch)
        if "x0" not in out:
            out.update(self.encoders.image(out["image"]))
        if "prompt_embeds" not in out:
            out.update(self.encoders.text(out["caption"]))
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in out.items()}

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> dict:
        """Run to ``cfg.steps`` optimizer steps; returns {"steps", "first_loss", "last_loss", "adapter"}."""
        from tqdm import tqdm

        cfg, acc = self.cfg, self.accelerator
        bar = tqdm(total=cfg.steps, initial=self.step_count, desc="train-adapter", dynamic_ncols=True,
                   disable=not acc.is_local_main_process)
        if self.step_count == 0 and cfg.validate_every:
            self.validate()
        first = last = None
        window: list[float] = []
        t0 = time.time()
        batches = iter(self.loader) if self.step_count < cfg.steps else iter(())
        for batch in batches:
            with acc.accumulate(self.adapter):
                loss = self.step(batch)
            window.append(acc.gather(loss[None]).mean().item())
            if not acc.sync_gradients:
                continue
            self.step_count += 1
            self.schedule.step()
            last = sum(window) / len(window)
            first = last if first is None else first
            window = []
            bar.update(1)
            bar.set_postfix(loss=f"{last:.4f}")
            n = self.step_count
            if n % cfg.log_every == 0 or n == 1 or n == cfg.steps:
                acc.log({"loss": last, "lr": self.schedule.get_last_lr()[0], "seconds": round(time.time() - t0, 2)},
                        step=n)
            if cfg.validate_every and (n % cfg.validate_every == 0 or n == cfg.steps):
                self.validate()
            if n % cfg.save_every == 0 or n == cfg.steps:
                self.save_checkpoint()
            if n >= cfg.steps:
                break
        del batches  # stops the DataLoader's workers
        bar.close()
        final = self.save_adapter()
        acc.end_training()
        return {"steps": self.step_count, "first_loss": first, "last_loss": last, "adapter": str(final)}

    # -- validation ------------------------------------------------------------------------------
    def _validation_batch(self, centred: CaptionedImages) -> dict:
        """The first ``validate_images`` centre crops, encoded, with fixed draws: C SSIM-chosen channels at
        Δ = 1 (as the sender sends them), ε per image, the fixed t."""
        from ..latent.selection import select_channels

        cfg = self.cfg
        items = [centred[i] for i in range(min(cfg.validate_images, len(centred)))]
        keys = [it["key"] for it in items]
        batch = {"image": torch.stack([it["image"] for it in items]), "key": keys,
                 "caption": [it["caption"] for it in items]}
        for part in self.parts:  # cached encodings first: the encoders that made them may be gone
            cached = [self.cache.read(part, k) for k in keys]
            batch.update({k: torch.stack([c[k] for c in cached]) for k in cached[0]})
        v = self.encode(batch)
        y = torch.round(v["y"].float())
        grid, mask = torch.zeros_like(y), torch.zeros(y.shape[:2], device=y.device)
        for i in range(len(items)):
            idx = select_channels(y[i].cpu(), v["small"][i].cpu(), cfg.validate_channels, "ssim")
            grid[i, idx], mask[i, idx] = y[i, idx], 1.0
        g = torch.Generator().manual_seed(sample_seed(cfg.seed, 0, "validation"))
        noise = torch.randn(v["x0"].shape, generator=g).to(self.device)
        return {"key": keys, "image": batch["image"], "x0": v["x0"], "prompt_embeds": v["prompt_embeds"],
                "pooled": v["pooled"], "grid": grid, "mask": mask, "noise": noise}

    @contextlib.contextmanager
    def _saved_weights(self):
        """The adapter's weights as they will be saved: the EMA when it is on."""
        params = list(self.unwrapped.parameters())
        if self.ema is None:
            yield
            return
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield
        finally:
            self.ema.restore(params)

    @torch.no_grad()
    def validate(self) -> None:
        """On the main process: the loss at fixed draws, and images written to OUT/validation/step-N."""
        from ..generate.flux_pipeline import FluxChannelPipeline
        from ..image import save_image

        if not self.accelerator.is_main_process:
            return
        cfg, v, wd = self.cfg, self.validation, self.weight_dtype
        folder = self.out / "validation" / f"step-{self.step_count:07d}"
        folder.mkdir(parents=True, exist_ok=True)
        names = v["key"]  # relative paths, kept as paths: KEY.png under the step's folder, one file per image
        originals = self.out / "validation" / "original"
        if not originals.exists():
            for name, image in zip(names, v["image"]):
                _save_under(save_image, image, originals, name)
        vae_device = next(self.pipe.vae.parameters()).device
        self.pipe.vae.to(self.device)
        self.unwrapped.eval()
        with self._saved_weights(), self.accelerator.autocast():
            # 1. The loss at the fixed t and ε: comparable from step to step.
            losses = [adapter_loss(self.transformer, self.unwrapped, v["x0"].to(wd), v["grid"].to(wd), v["mask"],
                                   v["prompt_embeds"].to(wd), v["pooled"].to(wd),
                                   torch.full((len(names),), t, device=self.device), v["noise"].to(wd),
                                   self.setup.guidance).item() for t in VALIDATION_T]
            # 2. Images, as a receiver would decode them (the preset's steps, seed 0).
            pipe = FluxChannelPipeline(self.pipe.scheduler, self.pipe.vae, None, self.pipe.tokenizer, None,
                                       self.pipe.tokenizer_2, self.transformer, adapter=self.unwrapped)
            pipe.set_progress_bar_config(disable=True)
            psnrs = []
            for i, name in enumerate(names):
                image = pipe("", v["grid"][i], v["mask"][i], cfg.resolution, cfg.resolution,
                             steps=cfg.validate_steps or self.setup.steps, guidance=self.setup.guidance,
                             generator=torch.Generator().manual_seed(0), prompt_embeds=v["prompt_embeds"][i:i + 1],
                             pooled_prompt_embeds=v["pooled"][i:i + 1])
                _save_under(save_image, image, folder, name)
                mse = torch.mean((image - v["image"][i].cpu()) ** 2).clamp_min(1e-10)
                psnrs.append(float(10 * torch.log10(1 / mse)))
        self.unwrapped.train()
        self.pipe.vae.to(vae_device)
        self.accelerator.log({"val_loss": sum(losses) / len(losses), "val_psnr": sum(psnrs) / len(psnrs)},
                             step=self.step_count)

    # -- saving ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """accelerate's state under a temporary name, renamed once every process has written its part."""
        acc, out = self.accelerator, self.out
        final = out / "checkpoints" / f"step-{self.step_count:07d}"
        tmp = final.with_name(final.name + ".part")
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=True)
        acc.wait_for_everyone()
        if acc.is_main_process:
            _publish(tmp, final)
            for old in _checkpoints(out)[:-self.cfg.keep]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def save_adapter(self) -> Path:
        """OUT/adapter (EMA weights when EMA is on) and OUT/adapter-raw, in the folder format adapter=PATH loads."""
        acc, out = self.accelerator, self.out
        acc.wait_for_everyone()
        final = out / "adapter"
        if acc.is_main_process:
            targets = [(out / "adapter-raw", contextlib.nullcontext)] if self.ema is not None else []
            for path, weights in targets + [(final, self._saved_weights)]:
                tmp = path.with_name(path.name + ".part")
                with weights():
                    self.unwrapped.save_pretrained(str(tmp), safe_serialization=True)
                _publish(tmp, path)
        acc.wait_for_everyone()
        return final

    def _free_encoders(self) -> None:
        """Cached parts need no encoder: T5 and CLIP go when the text is cached, g_a when the latents are,
        and the VAE then waits on the CPU for the validation images."""
        if "text" in self.parts:
            self.pipe.text_encoder = self.pipe.text_encoder_2 = None  # T5-XXL alone is 9.5 GB in bf16
        if "image" in self.parts:
            self.encoders.latent_encoder = None
            self.pipe.vae.to("cpu")
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def train_adapter(cfg: AdapterTrainConfig) -> dict:
    """Run (or resume) a training; returns {"steps", "first_loss", "last_loss", "adapter"}."""
    return AdapterTrainer(cfg).train()
