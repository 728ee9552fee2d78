"""``gsc train-lite``: the lite preset's networks, trained on BSDS500 (CPU, or ``--device cuda``).

Legs (stages), each seeded, resumable (accelerate checkpoints every ``save_every`` steps) and bounded by
steps or minutes, whichever comes first:

1. ``synthesis``: g_s, the learned upsampler of coded thumbnails (``gsc.models.lite.LiteSynthesis``). A
   batch is crops at one scale f, each coded at its own luma step drawn around the operating points the
   sender's rate control picks on BSDS500 (``OPERATING_POINTS``) and a chroma ratio the rate control tries,
   decoded as the receiver decodes them (bin-consistent thumbnail), and upsampled; loss = MSE +
   ``chroma_weight`` · chroma MSE.
2. ``base``: a rectified flow on TAEF2 latents (cached once), conditioned on the caption embedding.
3. ``adapter``: base frozen; a zero-init adapter reads the decoded thumbnail (rendered at the latent's
   1/8) and how coarse it is, trained with the same flow-matching loss.

The legs are independent (the adapter needs the base only), so two can run at once on one core each.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..color import chroma as chroma_planes
from ..errors import GSCError
from ..latent.lite import CHROMA_CODES
from ..generate.rectified_flow import flow_matching_loss_x0, interpolate, sample_timesteps
from ..models import thumbnail as T
from ..format.tables import CHROMA_RATIOS, LUMA_STEPS, SCALES, ThumbnailGeometry
from ..models.lite import LiteAdapter, LiteFlowUNet, LiteSynthesis, adapter_hint
from ..nn import load_model, save_model
from .lite_data import LiteData, load_caption_table

STAGES = ("synthesis", "base", "adapter")
CAPTIONS = ("data/captions/bsds500.json",)            # train + val: the only captions trained on
VAL_CAPTIONS = "data/captions/bsds500_test.json"      # test: validation only
OPERATING_POINTS = "data/lite_operating_points.json"  # (f, Δ_Y, Δ_C) the rate control picks on BSDS500 train+val


@dataclass
class LiteTrainConfig:
    data: str = "../shared/data/bsds500"
    out: str = "runs/lite"
    weights: str = "src/gsc/weights"
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    crop: int = 224
    batch: int = 8
    lr: float = 3e-4
    steps: dict = field(default_factory=lambda: {"synthesis": 6000, "base": 6000, "adapter": 6000})
    minutes: dict = field(default_factory=lambda: {"synthesis": 150.0, "base": 60.0, "adapter": 150.0})
    chroma_weight: float = 1.0   # synthesis: extra weight of the Cb, Cr error (colour is what viewers judge)
    p_drop_caption: float = 0.2  # samples trained as "no caption"
    latent_crop: int = 128       # base / adapter: image crops (latents at 1/8)
    latent_batch: int = 16
    p_one: float = 0.25          # adapter: share of samples at t = 1
    taef2: str | None = None     # folder with the upstream TAEF2 files (default: see gsc.generate.taef2)
    ema: float = 0.999
    save_every: int = 200
    val_images: int = 16
    init: dict = field(default_factory=dict)  # stage -> safetensors weights to warm-start a fresh run from
    operating_points: str = OPERATING_POINTS


class LiteRun:
    """The bookkeeping of one leg: accelerate, AdamW with a cosine schedule, diffusers' EMA, checkpoints
    (resumed by rerunning the same command), a progress bar and a JSON-lines log.

    Iterating yields the step numbers still to train; ``update(loss, logs)`` takes one optimizer step."""

    def __init__(self, cfg: LiteTrainConfig, stage: str, model: torch.nn.Module):
        from accelerate import Accelerator
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        self.cfg, self.stage, self.model = cfg, stage, model
        self.total, self.budget = cfg.steps[stage], 60 * cfg.minutes[stage]
        self.dir = Path(cfg.out) / stage
        self.accelerator = Accelerator(cpu=torch.device(cfg.device).type == "cpu")
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
        sched = get_cosine_schedule_with_warmup(opt, max(1, self.total // 50), self.total)
        self.model, self.opt, self.sched = self.accelerator.prepare(model, opt, sched)
        self.ema = EMAModel(self.model.parameters(), decay=cfg.ema)
        self.ema.to(self.accelerator.device)
        self.accelerator.register_for_checkpointing(self.ema)
        self.rng = np.random.default_rng(cfg.seed + STAGES.index(stage))
        self.step, self.elapsed = 0, 0.0
        self._resume()

    def _resume(self) -> None:
        state = self.dir / "state.json"
        if not state.exists():
            return
        self.accelerator.load_state(str(self.dir / "checkpoint"))
        s = json.loads(state.read_text())
        self.step, self.elapsed = s["step"], s["elapsed"]
        self.rng.bit_generator.state = s["rng"]
        print(f"[{self.stage}] resumed at step {self.step} ({self.elapsed / 60:.1f} min)")

    def save(self) -> None:
        """The checkpoint and its state file, each written whole before it replaces the last one."""
        import shutil

        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.accelerator.save_state(str(tmp))
        shutil.rmtree(self.dir / "checkpoint", ignore_errors=True)
        tmp.rename(self.dir / "checkpoint")
        state = {"step": self.step, "elapsed": self.elapsed, "rng": self.rng.bit_generator.state}
        (self.dir / "state.json.tmp").write_text(json.dumps(state))
        (self.dir / "state.json.tmp").replace(self.dir / "state.json")

    def __iter__(self):
        from tqdm import tqdm

        bar = tqdm(total=self.total, initial=self.step, desc=f"train-lite {self.stage}", mininterval=5)
        while self.step < self.total and self.elapsed < self.budget:
            start = time.time()
            yield self.step
            self.elapsed += time.time() - start
            self.step += 1
            bar.update(1)
            if self.step % self.cfg.save_every == 0:
                self.save()
        bar.close()
        self.save()

    def update(self, loss: torch.Tensor, logs: dict) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.ema.step(self.model.parameters())
        if self.step % 20 == 0:
            self.log({"step": self.step, "loss": float(loss.detach()), "lr": self.sched.get_last_lr()[0],
                      "minutes": round(self.elapsed / 60, 2), **logs})

    def log(self, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def final(self) -> torch.nn.Module:
        """The EMA weights in the bare model, on the CPU, in eval mode."""
        model = self.accelerator.unwrap_model(self.model)
        self.ema.copy_to(model.parameters())
        return model.cpu().eval()


# -- synthesis: g_s on coded thumbnails ------------------------------------------------------------

def load_operating_points(path: str | Path) -> list[dict]:
    return json.loads(Path(path).read_text())["points"]


def coded_thumbnails(x: torch.Tensor, scale_code: int, luma: torch.Tensor, chroma: torch.Tensor):
    """What the receiver decodes for crops x (B, 3, H, W) at scale f and per-sample step codes: the
    bin-consistent thumbnail planes and the steps (B, 2)."""
    geometry = ThumbnailGeometry(x.shape[-1], x.shape[-2], SCALES[scale_code])
    step_y = torch.tensor([LUMA_STEPS[int(i)] for i in luma], dtype=x.dtype)
    step_c = step_y * torch.tensor([CHROMA_RATIOS[int(j)] for j in chroma], dtype=x.dtype)
    planes = []
    for plane, step, size in zip(T.to_planes(x, geometry), (step_y, step_c, step_c), geometry.plane_sizes()):
        s = step.view(-1, 1, 1, 1)
        planes.append(T.reconstruct_plane(T.quantize(T.block_dct(plane), s), s, size))
    return planes, torch.stack([step_y, step_c], 1)


def synthesis_batch(data: LiteData, cfg: LiteTrainConfig, points: list[dict], rng: np.random.Generator) -> dict:
    """Crops at one scale (one operating point's f), each at the steps of a point of that scale."""
    point = points[int(rng.integers(len(points)))]
    same = [p for p in points if p["scale_code"] == point["scale_code"]]
    chosen = [same[int(i)] for i in rng.integers(len(same), size=cfg.batch)]
    # jittered around the points: a scale code ±1, luma codes ±2
    scale_code = int(np.clip(point["scale_code"] + rng.integers(-1, 2), 0, len(SCALES) - 1))
    luma = torch.tensor([p["luma_code"] for p in chosen]) + torch.from_numpy(rng.integers(-2, 3, cfg.batch))
    chroma = torch.from_numpy(rng.choice(CHROMA_CODES, cfg.batch))   # the ratios the rate control tries
    x, idx = data.codec_batch(cfg.batch, cfg.crop, rng)
    with torch.no_grad():
        planes, steps = coded_thumbnails(x, scale_code, luma.clamp(0, len(LUMA_STEPS) - 1), chroma)
    return {"x": x, "planes": planes, "steps": steps, "scale": torch.full((cfg.batch,), SCALES[scale_code]),
            "text": data.text_batch(idx, rng, cfg.p_drop_caption)}


def synthesis_loss(g_s: LiteSynthesis, batch: dict, chroma_weight: float) -> tuple[torch.Tensor, dict]:
    x = batch["x"]
    x_hat = g_s(batch["planes"], tuple(x.shape[-2:]), batch["steps"], batch["scale"], batch["text"])
    mse = torch.mean((x_hat - x) ** 2)
    chroma = torch.mean((chroma_planes(x_hat) - chroma_planes(x)) ** 2)
    with torch.no_grad():
        base = torch.mean((T.from_planes(batch["planes"], tuple(x.shape[-2:])) - x) ** 2)
    return mse + chroma_weight * chroma, {"psnr": -10 * math.log10(mse.item()),
                                          "gain_db": 10 * math.log10(base.item() / mse.item())}


def train_synthesis(cfg: LiteTrainConfig, data: LiteData) -> dict:
    points = load_operating_points(cfg.operating_points)
    g_s = _initial(cfg, "synthesis", seeded(cfg, "synthesis", LiteSynthesis))
    run = LiteRun(cfg, "synthesis", g_s)
    dev = run.accelerator.device
    for _ in run:
        batch = _to(synthesis_batch(data, cfg, points, run.rng), dev)
        loss, logs = synthesis_loss(run.model, batch, cfg.chroma_weight)
        run.update(loss, logs)
    g_s = run.final()
    metrics = validate_synthesis(g_s, _validation_set(cfg), points)
    save_model(g_s, Path(cfg.weights) / "lite_synthesis.safetensors",
               extra={"stage": "synthesis", "steps": run.step, "minutes": round(run.elapsed / 60, 1), **metrics})
    run.log({"final": True, **metrics})
    print(f"[synthesis] {metrics}")
    return metrics


@torch.no_grad()
def validate_synthesis(g_s: LiteSynthesis, images: list, points: list[dict]) -> dict:
    """g_s against the bicubic upscale of the same coded thumbnail, on BSDS500 test crops at the median
    operating point of each of three scales."""
    out = {}
    for scale_code in sorted({p["scale_code"] for p in points})[::3]:
        same = sorted(points, key=lambda p: p["luma_code"])
        same = [p for p in same if p["scale_code"] == scale_code]
        p = same[len(same) // 2]
        gains = []
        for x, text in images:
            planes, steps = coded_thumbnails(x[None], scale_code, torch.tensor([p["luma_code"]]),
                                             torch.tensor([p["chroma_code"]]))
            size = tuple(x.shape[-2:])
            x_hat = g_s(planes, size, steps, torch.tensor([SCALES[scale_code]]), text[None]).clamp(0, 1)
            base = T.from_planes(planes, size).clamp(0, 1)
            gains.append(10 * math.log10(float(((base - x) ** 2).mean()) / float(((x_hat - x) ** 2).mean())))
        out[f"val_gain_db_f{SCALES[scale_code]:g}"] = round(float(np.mean(gains)), 3)
    return out


# -- base and adapter: rectified flow in TAEF2's latent space ---------------------------------------

def _with_latents(cfg: LiteTrainConfig, data: LiteData) -> LiteData:
    """TAEF2 latents of every training image and its mirror, encoded once (≈ 1 s each) and cached."""
    from tqdm import tqdm

    from ..generate.taef2 import load_taef2_encoder

    if data.latents is None:
        encoder = load_taef2_encoder(cfg.taef2)
        data.cache_latents(Path(cfg.out) / "taef2_latents.pt", encoder,
                           progress=lambda it: tqdm(it, desc="train-lite: TAEF2 latents (cached once)"))
    return data


def base_loss(base: LiteFlowUNet, batch: dict) -> torch.Tensor:
    z0 = batch["z0"]
    t = sample_timesteps(z0.shape[0], p_one=0.1).to(z0.device)
    return flow_matching_loss_x0(base.predict_x0(interpolate(z0, torch.randn_like(z0), t), t, batch["text"]), z0)


def train_base(cfg: LiteTrainConfig, data: LiteData) -> dict:
    data = _with_latents(cfg, data)
    base = _initial(cfg, "base", seeded(cfg, "base", LiteFlowUNet))
    run = LiteRun(cfg, "base", base)
    for _ in run:
        _, z0, idx = data.latent_batch(cfg.latent_batch, cfg.latent_crop, run.rng)
        batch = _to({"z0": z0, "text": data.text_batch(idx, run.rng, cfg.p_drop_caption)}, run.accelerator.device)
        run.update(base_loss(run.model, batch), {})
    save_model(run.final(), Path(cfg.weights) / "lite_base.safetensors", dtype=torch.float16,  # half the bytes
               extra={"stage": "base", "steps": run.step, "minutes": round(run.elapsed / 60, 1)})
    return {"steps": run.step}


def adapter_batch(data: LiteData, cfg: LiteTrainConfig, points: list[dict], rng: np.random.Generator) -> dict:
    """Aligned image crops and TAEF2 latents, the crops coded at one operating point's scale."""
    x, z0, idx = data.latent_batch(cfg.latent_batch, cfg.latent_crop, rng)
    chosen = [points[int(i)] for i in rng.integers(len(points), size=1)] * cfg.latent_batch
    with torch.no_grad():
        planes, steps = coded_thumbnails(x, chosen[0]["scale_code"], torch.tensor([p["luma_code"] for p in chosen]),
                                         torch.from_numpy(rng.choice(CHROMA_CODES, len(chosen))))
    scale = torch.full((len(idx),), SCALES[chosen[0]["scale_code"]])
    return {"z0": z0, "hint": adapter_hint(planes, z0.shape[-2:], steps, scale),
            "text": data.text_batch(idx, rng, cfg.p_drop_caption)}


def adapter_loss(base: LiteFlowUNet, adapter: LiteAdapter, batch: dict, p_one: float) -> torch.Tensor:
    z0, text = batch["z0"], batch["text"]
    t = sample_timesteps(z0.shape[0], p_one=p_one).to(z0.device)
    z_t = interpolate(z0, torch.randn_like(z0), t)
    return flow_matching_loss_x0(base.predict_x0(z_t, t, text, adapter(z_t, t, text, batch["hint"])), z0)


def train_adapter(cfg: LiteTrainConfig, data: LiteData) -> dict:
    data = _with_latents(cfg, data)
    points = load_operating_points(cfg.operating_points)
    base = load_model(LiteFlowUNet, Path(cfg.weights) / "lite_base.safetensors").requires_grad_(False)
    adapter = _initial(cfg, "adapter", seeded(cfg, "adapter", lambda: LiteAdapter.from_base(base)))
    run = LiteRun(cfg, "adapter", adapter)
    base = base.to(run.accelerator.device)
    for _ in run:
        batch = _to(adapter_batch(data, cfg, points, run.rng), run.accelerator.device)
        run.update(adapter_loss(base, run.model, batch, cfg.p_one), {})
    save_model(run.final(), Path(cfg.weights) / "lite_adapter.safetensors", dtype=torch.float16,
               extra={"stage": "adapter", "steps": run.step, "minutes": round(run.elapsed / 60, 1)})
    return {"steps": run.step}


# -- shared --------------------------------------------------------------------------------------

def seeded(cfg: LiteTrainConfig, stage: str, build):
    """``build()`` under the leg's seed: the same initial weights (and then draws) every run."""
    torch.manual_seed(cfg.seed + 100 * STAGES.index(stage))
    return build()


def _initial(cfg: LiteTrainConfig, stage: str, model: torch.nn.Module) -> torch.nn.Module:
    """The model, warm-started from ``--init stage=weights.safetensors`` when given."""
    if stage in cfg.init:
        model.load_state_dict(load_model(type(model), cfg.init[stage]).state_dict())
        print(f"[{stage}] warm start from {cfg.init[stage]}")
    return model.train()


def _to(batch: dict, device) -> dict:
    return {k: [t.to(device) for t in v] if isinstance(v, list) else v.to(device) for k, v in batch.items()}


def _validation_set(cfg: LiteTrainConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``val_images`` BSDS500 test images (cropped to multiples of 16) with their captions."""
    from ..caption.embedding import embed_captions

    data = LiteData(cfg.data, splits=("test",))
    n = min(cfg.val_images, len(data))
    table = load_caption_table(VAL_CAPTIONS) if Path(VAL_CAPTIONS).is_file() else {}
    text = embed_captions([table.get(k, "") for k in data.keys[:n]])
    return [(data.images[i].float() / 255, text[i]) for i in range(n)]


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
    legs = {"synthesis": train_synthesis, "base": train_base, "adapter": train_adapter}
    return {stage: legs[stage](cfg, data) for stage in stages}
