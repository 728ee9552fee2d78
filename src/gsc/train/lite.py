"""``gsc train-lite``: the paper's method in miniature, trained on BSDS500 on a CPU.

Three stages, each seeded, resumable (a checkpoint every ``save_every`` steps) and bounded by steps or
minutes, whichever comes first:

1. ``codec``: the sender's analysis transform g_a (with g_s and a factorized entropy model, used only
   here), loss = MSE + β·rate of the kept channels; β is adjusted so that a kept channel costs about
   ``target_bits`` per latent position. Random channel subsets make each channel useful on its own.
2. ``base``: an unconditional rectified-flow U-Net on pixels (flow-matching loss).
3. ``adapter``: base and g_a frozen; a zero-init adapter on the selected channels (random or
   SSIM-chosen index sets, C drawn per sample) is trained with the same flow-matching loss.

``codec`` and ``base`` are independent, so they can run at the same time on one core each.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..generate.lite_unet import LiteAdapter, LiteFlowUNet
from ..generate.rectified_flow import flow_matching_loss_x0, interpolate, sample_timesteps
from ..latent.lite import LiteAnalysis, LiteSynthesis, med_residual, quantize, random_channel_mask
from ..latent.selection import select_channels
from ..nn import load_model, save_model
from .data import CropDataset, list_images, load_rgb

STAGES = ("codec", "base", "adapter")


@dataclass
class LiteTrainConfig:
    data: str = "../shared/data/bsds500"
    out: str = "runs/lite"
    weights: str = "src/gsc/weights"
    seed: int = 0
    threads: int = 2
    crop: int = 128
    batch: int = 16
    lr: float = 3e-4
    steps: dict = field(default_factory=lambda: {"codec": 4000, "base": 4000, "adapter": 8000})
    minutes: dict = field(default_factory=lambda: {"codec": 30.0, "base": 30.0, "adapter": 60.0})
    latent_channels: int = 32
    max_kept: int = 6
    ssim_masks: float = 0.5  # codec: share of samples that keep the SSIM-selected channels (as the sender does)
    target_bits: float = 1.1  # discrete bits per kept latent position (predictive coding, as in the stream)
    max_step: float = 2.5  # adapter sees latents quantized with steps in [1, max_step] (a rate knob)
    ema: float = 0.999
    p_one: float = 0.75  # share of adapter samples at t = 1: the one-step decode is the default
    adapter_max_kept: int = 8
    save_every: int = 200
    val_images: int = 16
    init: dict = field(default_factory=dict)  # stage -> checkpoint to warm-start a fresh run from


def lr_at(progress: float, base_lr: float, warmup: float = 0.02) -> float:
    if progress < warmup:
        return base_lr * progress / warmup
    p = (progress - warmup) / (1 - warmup)
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


class StageRunner:
    """Shared loop: schedule, checkpoint/resume, progress bar, JSON-lines log."""

    def __init__(self, cfg: LiteTrainConfig, stage: str, modules: dict, params: list, ema_module=None):
        self.cfg, self.stage, self.modules = cfg, stage, modules
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        self.ema = EMA(ema_module, cfg.ema) if ema_module is not None else None
        self.ema_module = ema_module
        self.step, self.elapsed, self.extra = 0, 0.0, {}
        self.rng = np.random.default_rng(cfg.seed + STAGES.index(stage))
        torch.manual_seed(cfg.seed + 100 * STAGES.index(stage))
        self.ckpt = self.out / f"{stage}.ckpt"
        # Resume from this run's checkpoint, or warm-start from another run's (--init): weights and
        # stage state such as the codec's β, with a fresh optimizer, schedule and counters.
        resume = self.ckpt.exists()
        source = self.ckpt if resume else cfg.init.get(stage)
        if source is None:
            return
        state = torch.load(source, weights_only=False)
        for name, m in modules.items():
            m.load_state_dict(state["modules"][name])
        self.extra = state.get("extra", {})
        if not resume:
            if self.ema is not None:  # the average starts from the loaded weights, not the fresh ones
                self.ema = EMA(ema_module, cfg.ema)
            print(f"[{stage}] warm start from {source} (its step {state['step']})")
            return
        try:
            self.opt.load_state_dict(state["opt"])
        except ValueError:  # parameter groups changed between versions of this script
            print(f"[{stage}] optimizer state reset (parameter groups changed)")
        if self.ema is not None:
            self.ema.shadow = state["ema"]
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        print(f"[{stage}] resumed at step {self.step} ({self.elapsed / 60:.1f} min)")

    def save(self) -> None:
        state = {"modules": {n: m.state_dict() for n, m in self.modules.items()}, "opt": self.opt.state_dict(),
                 "ema": self.ema.shadow if self.ema else None, "step": self.step, "elapsed": self.elapsed,
                 "extra": self.extra, "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.ckpt)

    def log(self, record: dict) -> None:
        with open(self.out / f"{self.stage}.log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def run(self, step_fn) -> None:
        from tqdm import tqdm

        steps, budget = self.cfg.steps[self.stage], self.cfg.minutes[self.stage] * 60
        bar = tqdm(total=steps, initial=self.step, desc=f"train-lite {self.stage}", dynamic_ncols=True)
        t0 = time.time() - self.elapsed
        avg = None
        while self.step < steps and self.elapsed < budget:
            progress = max(self.step / steps, self.elapsed / budget)
            for g in self.opt.param_groups:
                g["lr"] = lr_at(progress, self.cfg.lr) * g.get("lr_scale", 1.0)
            loss, info = step_fn()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 1.0)
            self.opt.step()
            if self.ema is not None:
                self.ema.update(self.ema_module)
            self.step += 1
            self.elapsed = time.time() - t0
            avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{avg:.4f}", **{k: f"{v:.3g}" for k, v in info.items()})
            if self.step % 50 == 0:
                self.log({"step": self.step, "min": round(self.elapsed / 60, 2), "loss": avg, **info})
            if self.step % self.cfg.save_every == 0:
                self.save()
        bar.close()
        self.save()

    def final_state(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.ema is not None:
            module.load_state_dict(self.ema.shadow)
        return module


def _validation_images(cfg: LiteTrainConfig) -> list[torch.Tensor]:
    paths = list_images(Path(cfg.data) / "test")[: cfg.val_images]
    return [load_rgb(p) for p in paths]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(torch.mean((a.clamp(0, 1) - b) ** 2)))


def discrete_likelihood(eb, y_hat: torch.Tensor) -> torch.Tensor:
    """P(ŷ) under the factorized entropy model, for integer-valued ŷ (B, N, h, w).

    The rate the stream really pays is that of the *rounded* latent; the usual additive-noise proxy
    overstates it badly for latents of small scale, so the encoder's rate term uses this (with
    straight-through rounding), while the density itself is fitted on the noisy proxy.
    """
    values = y_hat.transpose(0, 1).reshape(y_hat.shape[1], 1, -1)
    lik, _, _ = eb._likelihood(values)
    if eb.use_likelihood_bound:
        lik = eb.likelihood_lower_bound(lik)
    return lik.reshape(y_hat.shape[1], y_hat.shape[0], *y_hat.shape[2:]).transpose(0, 1)


def train_codec(cfg: LiteTrainConfig, data: CropDataset) -> dict:
    from ..latent._compressai import import_compressai

    import_compressai()
    from compressai.entropy_models import EntropyBottleneck

    g_a, g_s = LiteAnalysis(cfg.latent_channels), LiteSynthesis(cfg.latent_channels)
    eb = EntropyBottleneck(cfg.latent_channels)
    # The density model starts far from the latent's scale; a larger step lets it keep up, so that the
    # rate the encoder feels is the real one.
    runner = StageRunner(cfg, "codec", {"g_a": g_a, "g_s": g_s, "eb": eb},
                         [{"params": list(g_a.parameters()) + list(g_s.parameters())},
                          {"params": list(eb.parameters()), "lr_scale": 30.0}])
    log_beta = runner.extra.get("log_beta", math.log(0.003))

    def step():
        nonlocal log_beta
        x = data.batch(cfg.batch, runner.rng)
        y = g_a(x)
        y_hat = quantize(y, "ste")
        # Random subsets make every channel useful alone; SSIM-selected ones train the channels the
        # sender will really pick to work together.
        mask = random_channel_mask(x.shape[0], cfg.latent_channels, cfg.max_kept)
        with torch.no_grad():
            for i in np.flatnonzero(runner.rng.random(x.shape[0]) < cfg.ssim_masks):
                c = int(mask[i].sum())
                mask[i] = 0
                mask[i, select_channels(y_hat[i], x[i], c, "ssim")] = 1
        # The stream codes each channel's residual against the coder's spatial predictor, so the rate
        # term prices those residuals: smooth, wide-range channels are cheap, as they are in the stream.
        # The entropy model learns the residuals' density on its own (unweighted) likelihood; the
        # encoder feels the rate only through β, on the channels that would be sent.
        residual = med_residual(y_hat)
        _, lik_density = eb(residual.detach())
        density_bits = -torch.log2(lik_density.clamp_min(1e-9)).mean()
        bits = -torch.log2(discrete_likelihood(eb, residual).clamp_min(1e-9))
        kept = mask.expand_as(bits)
        bits_per_symbol = (bits * kept).sum() / kept.sum()
        x_hat = g_s(y_hat * mask, mask)
        mse = torch.mean((x_hat - x) ** 2)
        beta = math.exp(log_beta)
        loss = mse + beta * bits_per_symbol + 1e-3 * density_bits + eb.loss() * 1e-4
        # Dual ascent on β: a kept channel should cost about target_bits per position.
        err = float(np.clip(bits_per_symbol.item() - cfg.target_bits, -2, 2))
        log_beta = float(np.clip(log_beta + 0.005 * err, math.log(1e-4), math.log(1.0)))
        runner.extra["log_beta"] = log_beta
        return loss, {"psnr": -10 * math.log10(mse.item()), "bits": bits_per_symbol.item(), "beta": beta}

    runner.run(step)
    g_a.eval(), g_s.eval()
    val = []
    with torch.no_grad():
        for img in _validation_images(cfg):
            x = img[None, :, : img.shape[1] // 16 * 16, : img.shape[2] // 16 * 16]
            y = torch.round(g_a(x))
            for c in (1, 2):
                idx = select_channels(y[0], x[0], c, "ssim")
                mask = torch.zeros(1, cfg.latent_channels, 1, 1)
                mask[0, idx] = 1
                val.append((c, _psnr(g_s(y * mask, mask), x)))
    metrics = {f"val_psnr_gs_c{c}": float(np.mean([p for cc, p in val if cc == c])) for c in (1, 2)}
    save_model(g_a, Path(cfg.weights) / "lite_analysis.safetensors",
               extra={"stage": "codec", "steps": runner.step, "minutes": round(runner.elapsed / 60, 1), **metrics})
    runner.log({"final": True, **metrics})
    print(f"[codec] {metrics}")
    return metrics


def train_base(cfg: LiteTrainConfig, data: CropDataset) -> dict:
    base = LiteFlowUNet()
    runner = StageRunner(cfg, "base", {"base": base}, list(base.parameters()), ema_module=base)

    def step():
        x0 = data.batch(cfg.batch, runner.rng) * 2 - 1
        noise = torch.randn_like(x0)
        t = sample_timesteps(x0.shape[0], p_one=0.1)
        loss = flow_matching_loss_x0(base.predict_x0(interpolate(x0, noise, t), t), x0)
        return loss, {}

    runner.run(step)
    base = runner.final_state(base)
    save_model(base, Path(cfg.weights) / "lite_base.safetensors",
               extra={"stage": "base", "steps": runner.step, "minutes": round(runner.elapsed / 60, 1)})
    return {"steps": runner.step}


def _condition_masks(y_hat: torch.Tensor, x: torch.Tensor, max_kept: int, rng: np.random.Generator) -> torch.Tensor:
    """Per sample: C in 1..max_kept, small C more often (C = 1 about 35%); half the samples SSIM-chosen,
    half random index sets."""
    b, n = y_hat.shape[:2]
    mask = torch.zeros(b, n, 1, 1)
    for i in range(b):
        c = 1 + int(max_kept * rng.random() ** 2)
        if rng.random() < 0.5:
            idx = select_channels(y_hat[i], x[i], c, "ssim")
        else:
            idx = rng.choice(n, size=c, replace=False).tolist()
        mask[i, idx] = 1
    return mask


def train_adapter(cfg: LiteTrainConfig, data: CropDataset) -> dict:
    weights = Path(cfg.weights)
    g_a = load_model(LiteAnalysis, weights / "lite_analysis.safetensors").requires_grad_(False)
    base = load_model(LiteFlowUNet, weights / "lite_base.safetensors").requires_grad_(False)
    adapter = LiteAdapter.from_base(base, cfg.latent_channels)
    runner = StageRunner(cfg, "adapter", {"adapter": adapter}, list(adapter.parameters()), ema_module=adapter)

    def step():
        x = data.batch(cfg.batch, runner.rng)
        with torch.no_grad():
            y = g_a(x)
            # Half the samples at the native step 1, half at a coarser step Δ: the sender may trade
            # quality for rate with Δ, and the adapter learns to read ŷ = Δ·round(y / Δ).
            delta = torch.where(torch.rand(x.shape[0]) < 0.5, torch.ones(x.shape[0]),
                                torch.empty(x.shape[0]).uniform_(1.0, cfg.max_step)).view(-1, 1, 1, 1)
            y_hat = torch.round(y / delta) * delta
            mask = _condition_masks(y_hat, x, cfg.adapter_max_kept, runner.rng)
        x0 = x * 2 - 1
        noise = torch.randn_like(x0)
        t = sample_timesteps(x0.shape[0], p_one=cfg.p_one)
        x_t = interpolate(x0, noise, t)
        loss = flow_matching_loss_x0(base.predict_x0(x_t, t, adapter(x_t, t, y_hat * mask, mask)), x0)
        return loss, {}

    runner.run(step)
    # Keep the EMA or the raw weights, whichever validates better on BSDS500 test: with a short CPU
    # budget the EMA can still lag far behind.
    images = _validation_images(cfg)
    raw = {k: v.clone() for k, v in adapter.state_dict().items()}
    scores = {"raw": validate_generator(g_a, base, adapter.eval(), images)}
    adapter.load_state_dict(runner.ema.shadow)
    scores["ema"] = validate_generator(g_a, base, adapter, images)
    chosen = max(scores, key=lambda k: scores[k]["val_psnr_c2_s1"])
    if chosen == "raw":
        adapter.load_state_dict(raw)
    metrics = {**scores[chosen], "weights": chosen}
    save_model(adapter, weights / "lite_adapter.safetensors",
               extra={"stage": "adapter", "steps": runner.step, "minutes": round(runner.elapsed / 60, 1), **metrics})
    runner.log({"final": True, **metrics})
    print(f"[adapter] {metrics}")
    return metrics


@torch.no_grad()
def validate_generator(g_a, base, adapter, images, channels=(1, 2), steps=(1,)) -> dict:
    from ..generate.rectified_flow import euler_sample

    out = {}
    for c in channels:
        for s in steps:
            ps = []
            for k, img in enumerate(images):
                x = img[None, :, : img.shape[1] // 16 * 16, : img.shape[2] // 16 * 16]
                y = torch.round(g_a(x))
                mask = torch.zeros(1, y.shape[1], 1, 1)
                mask[0, select_channels(y[0], x[0], c, "ssim")] = 1
                cond = y * mask
                noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(k))
                x0 = euler_sample(lambda xt, t: base(xt, t, adapter(xt, t, cond, mask)), noise, s)
                ps.append(_psnr(x0 * 0.5 + 0.5, x))
            out[f"val_psnr_c{c}_s{s}"] = float(np.mean(ps))
    return out


def train_lite(cfg: LiteTrainConfig, stages: list[str]) -> dict:
    torch.set_num_threads(cfg.threads)
    Path(cfg.weights).mkdir(parents=True, exist_ok=True)
    root = Path(cfg.data)
    for split in ("train", "val", "test"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"{root / split} is missing: --data must hold BSDS500's train/val/test")
    data = CropDataset([root / "train", root / "val"], crop=cfg.crop)
    print(f"train-lite: {len(data)} training images, stages {stages}, config {json.dumps(asdict(cfg))}")
    results = {}
    for stage in stages:
        results[stage] = {"codec": train_codec, "base": train_base, "adapter": train_adapter}[stage](cfg, data)
    return results
