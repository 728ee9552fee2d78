"""``gsc train-lite``: the paper's method in miniature, trained on BSDS500 on a CPU.

Stages, each seeded, resumable (a checkpoint every ``save_every`` steps) and bounded by steps or
minutes, whichever comes first:

1. ``codec``: the sender's analysis g_a and the receiver's synthesis g_s (the image's low band), with
   a factorized entropy model used only here. Both start as a YCbCr thumbnail codec (``gsc.latent.lite``);
   loss = MSE + λ·(bits per pixel of the kept channels, priced as the stream codes them). Quantization
   steps Δ and kept channel sets (C = 1..8, half chosen by the sender's selection, half random) are drawn
   per sample, so one model serves every operating point.
2. ``base``: a rectified flow on TAEF2 latents (cached once), conditioned on the caption embedding.
3. ``adapter``: base and g_a frozen; a zero-init adapter reads the sent channels, trained with the same
   flow-matching loss.

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

from ..errors import GSCError
from ..generate.lite_unet import LiteAdapter, LiteFlowUNet
from ..generate.rectified_flow import flow_matching_loss_x0, interpolate, sample_timesteps
from ..latent.lite import LiteAnalysis, LiteSynthesis, med_residual, quantize, random_channel_mask
from ..latent.selection import select_channels
from ..nn import load_model, save_model
from .lite_data import LiteData, load_caption_table

STAGES = ("codec", "base", "adapter")
CAPTIONS = ("data/captions/bsds500.json",)            # train + val: the only captions trained on
VAL_CAPTIONS = "data/captions/bsds500_test.json"      # test: validation only


@dataclass
class LiteTrainConfig:
    data: str = "../shared/data/bsds500"
    out: str = "runs/lite"
    weights: str = "src/gsc/weights"
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    crop: int = 192
    batch: int = 8
    lr: float = 3e-4
    steps: dict = field(default_factory=lambda: {"codec": 6000, "base": 6000, "adapter": 8000})
    minutes: dict = field(default_factory=lambda: {"codec": 120.0, "base": 60.0, "adapter": 120.0})
    latent_channels: int = 32
    max_kept: int = 8
    lam: float = 0.16            # codec: MSE per bit per pixel (WebP's slope near 0.01 bpp on BSDS500)
    steps_range: tuple = (0.5, 4.0)  # codec: Δ drawn log-uniformly in this range
    p_drop_caption: float = 0.2  # samples trained as "no caption"
    latent_crop: int = 128       # base / adapter: image crops (latents at 1/8)
    latent_batch: int = 16
    p_one: float = 0.5           # adapter: share of samples at t = 1, the one-step decode
    taef2: str | None = None     # folder with the upstream TAEF2 files (default: see gsc.generate.taef2)
    ema: float = 0.999
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
        state = torch.load(source, weights_only=False, map_location="cpu")
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
            self.ema.shadow = {k: v.to(cfg.device) for k, v in state["ema"].items()}
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


def draw_steps(n: int, lo: float, hi: float, rng: np.random.Generator) -> torch.Tensor:
    """Quantization steps Δ, log-uniform in [lo, hi], shape (n, 1, 1, 1)."""
    return torch.from_numpy(np.exp(rng.uniform(math.log(lo), math.log(hi), n))).float().view(-1, 1, 1, 1)


def condition_masks(y_hat: torch.Tensor, x: torch.Tensor, max_kept: int, rng: np.random.Generator,
                    p_random: float = 0.3) -> torch.Tensor:
    """(B, N, 1, 1) kept-channel masks, C in 1..max_kept per sample: mostly the first C channels (the
    codec learns an order, most useful first, as the ``ordered`` selection sends them), and a share
    ``p_random`` of channel 0 with C − 1 random others (so that every channel stays useful, whatever
    another selection picks)."""
    b, n = y_hat.shape[:2]
    kept = rng.integers(1, max_kept + 1, b)
    mask = torch.zeros(b, n)
    for i in range(b):
        if rng.random() < p_random:
            mask[i, [0, *(1 + rng.choice(n - 1, size=kept[i] - 1, replace=False))]] = 1
        else:
            mask[i, : kept[i]] = 1
    return mask[:, :, None, None].to(y_hat.device)


def train_codec(cfg: LiteTrainConfig, data: LiteData) -> dict:
    from ..latent._compressai import import_compressai

    import_compressai()
    from compressai.entropy_models import EntropyBottleneck

    dev = torch.device(cfg.device)
    g_a, g_s = LiteAnalysis(cfg.latent_channels).to(dev), LiteSynthesis(cfg.latent_channels).to(dev)
    eb = EntropyBottleneck(cfg.latent_channels).to(dev)
    # The density model must keep up with the latent's changing scale: a larger step.
    runner = StageRunner(cfg, "codec", {"g_a": g_a, "g_s": g_s, "eb": eb},
                         [{"params": list(g_a.parameters()) + list(g_s.parameters())},
                          {"params": list(eb.parameters()), "lr_scale": 30.0}])

    def step():
        x, idx = data.codec_batch(cfg.batch, cfg.crop, runner.rng)
        text = data.text_batch(idx, runner.rng, cfg.p_drop_caption).to(dev)
        x, delta = x.to(dev), draw_steps(x.shape[0], *cfg.steps_range, runner.rng).to(dev)
        q = quantize(g_a(x) / delta, "ste")                     # the integer symbols the stream codes
        with torch.no_grad():
            mask = condition_masks(q * delta, x, cfg.max_kept, runner.rng)
        # The stream codes each channel's residual against the coder's spatial predictor, so the rate
        # term prices those residuals. The entropy model fits their density on its own likelihood; the
        # encoder feels the rate only through λ, on the channels that are sent.
        residual = med_residual(q)
        _, lik_density = eb(residual.detach())
        density_bits = -torch.log2(lik_density.clamp_min(1e-9)).mean()
        bits = -torch.log2(discrete_likelihood(eb, residual).clamp_min(1e-9))
        bpp = (bits * mask).sum() / (x.shape[0] * x.shape[2] * x.shape[3])
        x_hat = g_s(q * delta, mask, text)
        mse = torch.mean((x_hat - x) ** 2)
        loss = mse + cfg.lam * bpp + 1e-3 * density_bits + eb.loss() * 1e-4
        return loss, {"psnr": -10 * math.log10(mse.item()), "bpp": bpp.item(),
                      "C": mask.sum().item() / x.shape[0]}

    runner.run(step)
    g_a, g_s = g_a.cpu().eval(), g_s.cpu().eval()  # validated as the CPU receiver runs them
    metrics = validate_codec(g_a, g_s, _validation_set(cfg))
    extra = {"stage": "codec", "steps": runner.step, "minutes": round(runner.elapsed / 60, 1), **metrics}
    save_model(g_a, Path(cfg.weights) / "lite_analysis.safetensors", extra=extra)
    save_model(g_s, Path(cfg.weights) / "lite_synthesis.safetensors", extra=extra)
    runner.log({"final": True, **metrics})
    print(f"[codec] {metrics}")
    return metrics


def _validation_set(cfg: LiteTrainConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``val_images`` BSDS500 test images (cropped to multiples of 16) with their captions."""
    from ..caption.embedding import embed_captions

    data = LiteData(cfg.data, splits=("test",))
    n = min(cfg.val_images, len(data))
    table = load_caption_table(VAL_CAPTIONS) if Path(VAL_CAPTIONS).is_file() else {}
    text = embed_captions([table.get(k, "") for k in data.keys[:n]])
    return [(data.images[i].float() / 255, text[i]) for i in range(n)]


@torch.no_grad()
def validate_codec(g_a, g_s, images, channels=(1, 2, 4), step: float = 1.0) -> dict:
    """g_s PSNR on BSDS500 test with the sender's selection, and the stream's real latent bytes."""
    from ..latent.coding import encode_latent

    out = {}
    for c in channels:
        ps, nbytes, px = [], 0, 0
        for x, text in images:
            q = torch.round(g_a(x[None]) / step)
            idx = select_channels(q[0] * step, x, c, "ordered")
            mask = torch.zeros(1, q.shape[1], 1, 1)
            mask[0, idx] = 1
            ps.append(_psnr(g_s(q * step, mask, text[None]), x[None]))
            nbytes += len(encode_latent(q[0, idx].numpy().astype(np.int64), idx, q.shape[1], step))
            px += x.shape[1] * x.shape[2]
        out[f"val_psnr_c{c}"] = float(np.mean(ps))
        out[f"val_latent_bpp_c{c}"] = nbytes * 8 / px
    return out


def _with_latents(cfg: LiteTrainConfig, data: LiteData) -> LiteData:
    """TAEF2 latents of every training image and its mirror, encoded once (≈ 1 s each) and cached."""
    from tqdm import tqdm

    from ..generate.taef2 import load_taef2_encoder

    if data.latents is None:
        encoder = load_taef2_encoder(cfg.taef2)
        data.cache_latents(Path(cfg.out) / "taef2_latents.pt", encoder,
                           progress=lambda it: tqdm(it, desc="train-lite: TAEF2 latents (cached once)"))
    return data


def train_base(cfg: LiteTrainConfig, data: LiteData) -> dict:
    data = _with_latents(cfg, data)
    dev = torch.device(cfg.device)
    base = LiteFlowUNet().to(dev)
    runner = StageRunner(cfg, "base", {"base": base}, list(base.parameters()), ema_module=base)

    def step():
        _, z0, idx = data.latent_batch(cfg.latent_batch, cfg.latent_crop, runner.rng)
        z0, text = z0.to(dev), data.text_batch(idx, runner.rng, cfg.p_drop_caption).to(dev)
        noise = torch.randn_like(z0)
        t = sample_timesteps(z0.shape[0], p_one=0.1).to(dev)
        loss = flow_matching_loss_x0(base.predict_x0(interpolate(z0, noise, t), t, text), z0)
        return loss, {}

    runner.run(step)
    base = runner.final_state(base)
    save_model(base, Path(cfg.weights) / "lite_base.safetensors", dtype=torch.float16,  # half the bytes
               extra={"stage": "base", "steps": runner.step, "minutes": round(runner.elapsed / 60, 1)})
    return {"steps": runner.step}


def train_adapter(cfg: LiteTrainConfig, data: LiteData) -> dict:
    data = _with_latents(cfg, data)
    weights = Path(cfg.weights)
    dev = torch.device(cfg.device)
    g_a = load_model(LiteAnalysis, weights / "lite_analysis.safetensors").requires_grad_(False).to(dev)
    base = load_model(LiteFlowUNet, weights / "lite_base.safetensors").requires_grad_(False).to(dev)
    adapter = LiteAdapter.from_base(base, cfg.latent_channels).to(dev)
    runner = StageRunner(cfg, "adapter", {"adapter": adapter}, list(adapter.parameters()), ema_module=adapter)

    def step():
        x, z0, idx = data.latent_batch(cfg.latent_batch, cfg.latent_crop, runner.rng)
        x, z0 = x.to(dev), z0.to(dev)
        text = data.text_batch(idx, runner.rng, cfg.p_drop_caption).to(dev)
        with torch.no_grad():
            delta = draw_steps(x.shape[0], *cfg.steps_range, runner.rng).to(dev)
            y_hat = torch.round(g_a(x) / delta) * delta            # what the receiver dequantizes
            mask = condition_masks(y_hat, x, cfg.max_kept, runner.rng)
        noise = torch.randn_like(z0)
        t = sample_timesteps(z0.shape[0], p_one=cfg.p_one).to(dev)
        z_t = interpolate(z0, noise, t)
        residuals = adapter(z_t, t, text, y_hat * mask, mask)
        loss = flow_matching_loss_x0(base.predict_x0(z_t, t, text, residuals), z0)
        return loss, {}

    runner.run(step)
    adapter = runner.final_state(adapter)
    save_model(adapter, weights / "lite_adapter.safetensors", dtype=torch.float16,
               extra={"stage": "adapter", "steps": runner.step, "minutes": round(runner.elapsed / 60, 1)})
    return {"steps": runner.step}


def train_lite(cfg: LiteTrainConfig, stages: list[str]) -> dict:
    from ..caption.embedding import embed_captions

    torch.set_num_threads(cfg.threads)
    if torch.device(cfg.device).type == "cuda" and not torch.cuda.is_available():
        raise GSCError(f"--device {cfg.device}: this torch sees no CUDA device")
    Path(cfg.weights).mkdir(parents=True, exist_ok=True)
    root = Path(cfg.data)
    for split in ("train", "val", "test"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"{root / split} is missing: --data must hold BSDS500's train/val/test")
    data = LiteData(root)
    n_captions = data.set_captions(load_caption_table(*CAPTIONS), embed_captions)
    print(f"train-lite: {len(data)} training images ({n_captions} with captions), stages {stages}, "
          f"config {json.dumps(asdict(cfg))}")
    results = {}
    for stage in stages:
        results[stage] = {"codec": train_codec, "base": train_base, "adapter": train_adapter}[stage](cfg, data)
    return results
