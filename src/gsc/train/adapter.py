"""``gsc train-adapter``: train the FLUX adapter on captioned images, the base frozen (accelerate).

Per sample: the sender's latent encoder gives y (N channels at 1/16); a quantization step Δ (1, or one
of the stream's steps), C ~ U{1..max_channels} and an index set (the C best by SSIM with probability
``p_ssim``, else C random channels) give the condition ŷ_sel = Δ·round(y/Δ) on the selected channels.
The target image goes through the FLUX VAE and is packed into tokens, x_0. Then, as FLUX:

    t ~ logit-normal, shifted by exp(μ(tokens))       (gsc.generate.rectified_flow.sample_timesteps)
    x_t = (1 − t)·x_0 + t·ε,  loss = ‖v̂(x_t, t, caption, adapter(ŷ_sel)) − (ε − x_0)‖²

Only the adapter learns. C = 0 is never trained: the pipeline runs the base alone there.

``precompute`` encodes every image once (center crop; VAE latent, y, caption embeddings) into
``OUT/cache`` and frees the VAE, the text encoders and the latent encoder before training: T5-XXL alone
is 9.5 GB in bf16. Checkpoints are ``accelerate`` states (adapter weights in safetensors) under
``OUT/checkpoints/step-NNNNNNN``; the final adapter is ``OUT/adapter`` (``save_pretrained``), which
``adapter=PATH`` loads. The loss goes to ``OUT/log.jsonl``.
"""

from __future__ import annotations

import gc
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import GSCError
from ..generate.rectified_flow import flow_matching_loss, interpolate, sample_timesteps
from ..latent.coding import STEPS
from ..latent.selection import select_channels
from .data import list_images, load_rgb

COARSE_STEPS = [s for s in STEPS if s > 1.0]   # the steps a sender coarsens to from the default 1.0 (--max-bpp)


@dataclass
class AdapterTrainConfig:
    data: str                           # image folder
    captions: str | None = None         # JSON {file name: caption}; missing names train with ""
    out: str = "runs/flux-adapter"
    preset: str = "flux-dev"            # base model, latent encoder and guidance
    model: str | None = None            # override the preset's base (HF id, local folder, "tiny")
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
    mixed_precision: str = "bf16"       # "no", "fp16", "bf16"
    gradient_checkpointing: bool = False
    precompute: bool = False
    adapter_layers: int = 4             # M double-stream blocks
    adapter_single_layers: int = 2      # S single-stream blocks
    condition_dim: int = 256
    save_every: int = 500
    keep: int = 2                       # checkpoints kept
    log_every: int = 10
    seed: int = 0
    resume: bool = True
    max_sequence_length: int = 512


# --- data -----------------------------------------------------------------------------------------

def read_captions(path: str | Path | None) -> dict[str, str]:
    from ..caption.captioners import load_captions

    return {} if path is None else load_captions(path)


class CaptionedImages(torch.utils.data.Dataset):
    """Image folder + captions: square crops at ``resolution`` (random with a flip, or centred)."""

    def __init__(self, folder: str | Path, captions: dict[str, str], resolution: int, random_crop: bool = True):
        if resolution % 16:
            raise GSCError(f"resolution must be a multiple of 16, got {resolution}")
        folder = Path(folder)
        if not folder.is_dir():
            raise GSCError(f"no image folder at {folder}")
        self.paths = list_images(folder)
        if not self.paths:
            raise GSCError(f"no images in {folder}")
        self.captions, self.resolution, self.random_crop = captions, resolution, random_crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        image, r = load_rgb(self.paths[i]), self.resolution
        h, w = image.shape[-2:]
        if min(h, w) != r:  # shorter side to r, so a crop keeps most of the scene
            s = r / min(h, w)
            size = (max(r, round(h * s)), max(r, round(w * s)))
            image = F.interpolate(image[None], size=size, mode="bilinear", antialias=s < 1, align_corners=False)[0]
            h, w = size
        if self.random_crop:
            y, x = random.randint(0, h - r), random.randint(0, w - r)
        else:
            y, x = (h - r) // 2, (w - r) // 2
        image = image[:, y:y + r, x:x + r].clamp(0, 1)
        if self.random_crop and random.random() < 0.5:
            image = image.flip(-1)
        return {"image": image, "caption": self.captions.get(self.paths[i].name, ""), "name": self.paths[i].name}


class CachedSamples(torch.utils.data.Dataset):
    """The per-image tensors written by :func:`precompute`."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from safetensors.torch import load_file

        return load_file(str(self.files[i]))


# --- encoding: what the sender and the frozen base make of one image --------------------------------

class Encoders:
    """The frozen encoders: FLUX's VAE and text encoders (through the pipeline) and the latent encoder."""

    def __init__(self, pipe, latent_encoder, device: torch.device, max_sequence_length: int):
        self.pipe, self.latent_encoder, self.device = pipe, latent_encoder, device
        self.max_sequence_length = max_sequence_length

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, captions: list[str]) -> dict:
        """(B, 3, R, R) in [0, 1] → x0 (B, L, 64), y (B, N, h, w), small (B, 3, h, w), text embeddings."""
        pipe = self.pipe
        images = images.to(self.device)
        vae = pipe.vae
        lat = vae.encode((images * 2 - 1).to(vae.dtype)).latent_dist.mode()
        lat = (lat - vae.config.shift_factor) * vae.config.scaling_factor
        b, c, h8, w8 = lat.shape
        x0 = pipe._pack_latents(lat, b, c, h8, w8)
        y = torch.stack([self.latent_encoder.analyse(img.float()) for img in images])
        # The SSIM selection only sees the image area-averaged to the latent grid: keep just that.
        small = F.adaptive_avg_pool2d(images.float(), y.shape[-2:])
        prompt, pooled, _ = pipe.encode_prompt(list(captions), device=self.device,
                                               max_sequence_length=self.max_sequence_length)
        return {"x0": x0, "y": y, "small": small, "prompt_embeds": prompt, "pooled": pooled}


def draw_condition(y: torch.Tensor, small: torch.Tensor, max_channels: int, p_ssim: float, p_coarse: float,
                   rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: Δ, C and an index set → (B, N, h, w) grid of ŷ_sel (zeros elsewhere), (B, N) mask."""
    b, n = y.shape[:2]
    grid, mask = torch.zeros_like(y), torch.zeros(b, n, device=y.device)
    for i in range(b):
        step = rng.choice(COARSE_STEPS) if rng.random() < p_coarse else 1.0
        y_hat = torch.round(y[i].float() / step) * step
        c = rng.randint(1, min(max_channels, n))
        if rng.random() < p_ssim:
            idx = select_channels(y_hat.cpu(), small[i].float().cpu(), c, "ssim")
        else:
            idx = sorted(rng.sample(range(n), c))
        grid[i, idx] = y_hat[idx].to(grid.dtype)
        mask[i, idx] = 1.0
    return grid, mask


def adapter_loss(transformer, adapter, x0: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor,
                 prompt_embeds: torch.Tensor, pooled: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                 guidance: float | None = None) -> torch.Tensor:
    """The rectified-flow loss of base + adapter on packed latents x0 (B, h·w, 64), grid (B, N, h, w)."""
    from diffusers import FluxPipeline

    b, _, h, w = grid.shape
    device, dtype = x0.device, transformer.dtype
    img_ids = FluxPipeline._prepare_latent_image_ids(b, h, w, device, dtype)
    txt_ids = torch.zeros(prompt_embeds.shape[1], 3, device=device, dtype=dtype)
    g = torch.full((b,), guidance, device=device) if transformer.config.guidance_embeds else None
    x_t = interpolate(x0, noise, t)
    kw = dict(encoder_hidden_states=prompt_embeds, pooled_projections=pooled, timestep=t.to(x_t.dtype),
              img_ids=img_ids, txt_ids=txt_ids, guidance=g)
    blocks, singles = adapter(x_t, grid, mask, **kw)
    v = transformer(hidden_states=x_t, controlnet_block_samples=blocks, controlnet_single_block_samples=singles,
                    return_dict=False, **kw)[0]
    return flow_matching_loss(v.float(), x0.float(), noise.float())


# --- the run --------------------------------------------------------------------------------------

def _base_model(cfg: AdapterTrainConfig) -> tuple[str, float]:
    from ..presets import get_preset

    preset = get_preset(cfg.preset)
    if preset.generator not in ("flux", "flux-tiny"):
        raise GSCError(f"train-adapter trains the FLUX adapter; preset {cfg.preset!r} uses {preset.generator!r}")
    kwargs = preset.generator_kwargs
    model = cfg.model or kwargs.get("model") or f"tiny:{kwargs.get('seed', 0)}"
    guidance = cfg.guidance if cfg.guidance is not None else kwargs.get("guidance", 3.5)
    return model, guidance


def _latent_encoder(cfg: AdapterTrainConfig, device):
    from ..latent.encoders import LATENT_ENCODERS
    from ..presets import get_preset

    preset = get_preset(cfg.preset)
    enc = LATENT_ENCODERS.create(preset.latent, **preset.latent_kwargs)
    for value in vars(enc).values():  # its network(s) go where the images are
        if isinstance(value, torch.nn.Module):
            value.to(device)
    return enc


def precompute(cfg: AdapterTrainConfig, encoders: Encoders, model: str) -> list[Path]:
    """Encode every image once (center crops) into OUT/cache; reuse a cache made with the same settings."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    cache = Path(cfg.out) / "cache"
    key = {"model": model, "preset": cfg.preset, "resolution": cfg.resolution, "data": str(Path(cfg.data).resolve()),
           "captions": read_captions(cfg.captions), "max_sequence_length": cfg.max_sequence_length}
    manifest = cache / "manifest.json"
    data = CaptionedImages(cfg.data, key["captions"], cfg.resolution, random_crop=False)
    files = [cache / f"{p.stem}.safetensors" for p in data.paths]
    if manifest.exists() and json.loads(manifest.read_text()) == key and all(f.exists() for f in files):
        return files
    cache.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(len(data)), desc="precompute", dynamic_ncols=True):
        item = data[i]
        enc = encoders(item["image"][None], [item["caption"]])
        save_file({k: v[0].detach().float().cpu().contiguous() for k, v in enc.items()}, str(files[i]))
    manifest.write_text(json.dumps(key, indent=1))
    return files


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*"))


def train_adapter(cfg: AdapterTrainConfig) -> dict:
    """Run (or resume) a training; returns {"steps", "first_loss", "last_loss", "adapter"}."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    from ..generate.flux import load_base
    from ..generate.flux_adapter import FluxChannelAdapter
    from ..generate.flux_pipeline import FluxChannelPipeline, time_shift_mu

    # 0. Check the options before anything heavy starts.
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        raise GSCError(f"mixed precision must be no, fp16 or bf16, got {cfg.mixed_precision!r}")
    model, guidance = _base_model(cfg)
    captions = read_captions(cfg.captions)
    CaptionedImages(cfg.data, captions, cfg.resolution)
    for name in ("batch", "grad_accum", "steps", "max_channels", "save_every", "log_every", "keep"):
        if getattr(cfg, name) < 1:
            raise GSCError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    out = Path(cfg.out)
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision)
    set_seed(cfg.seed, device_specific=True)
    rng = random.Random(cfg.seed * 1000 + accelerator.process_index)
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.mixed_precision]
    device = accelerator.device

    # 1. The frozen base, the sender's latent encoder, the data (optionally encoded once).
    components = load_base(model, weight_dtype)
    pipe = FluxChannelPipeline(**components).to(device)
    encoders = Encoders(pipe, _latent_encoder(cfg, device), device, cfg.max_sequence_length)
    if cfg.precompute:
        with accelerator.main_process_first():  # the others then find the cache complete
            files = precompute(cfg, encoders, model)
        dataset = CachedSamples(files)
        # Only the transformer is needed now: drop every reference to the encoders (T5-XXL is 9.5 GB).
        for name in ("vae", "text_encoder", "text_encoder_2"):
            components.pop(name)
            setattr(pipe, name, None)
        encoders = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    else:
        dataset = CaptionedImages(cfg.data, captions, cfg.resolution)
    transformer = components["transformer"]
    if cfg.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()

    # 2. The adapter (copies of the base's first blocks, zero-init projections), optimizer, schedule.
    adapter = FluxChannelAdapter.from_transformer(transformer, _latent_channels(cfg), cfg.adapter_layers,
                                                  cfg.adapter_single_layers, cfg.condition_dim).float().train()
    if cfg.gradient_checkpointing:
        adapter.controlnet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch, shuffle=True,
                                         drop_last=len(dataset) >= cfg.batch,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    adapter, optimizer, loader = accelerator.prepare(adapter, optimizer, loader)
    # Stepped by hand once per optimizer step (accelerate's wrapper would step it once per process).
    accelerator.register_for_checkpointing(schedule)

    # 3. Resume from the latest checkpoint.
    step = 0
    if cfg.resume and _checkpoints(out):
        latest = _checkpoints(out)[-1]
        accelerator.load_state(str(latest))
        step = int(latest.name.split("-")[1])
        accelerator.print(f"train-adapter: resumed from {latest}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    # 4. The loop.
    bar = tqdm(total=cfg.steps, initial=step, desc="train-adapter", dynamic_ncols=True,
               disable=not accelerator.is_local_main_process)
    first = last = None
    window: list[float] = []
    t0 = time.time()
    while step < cfg.steps:
        for batch in loader:
            with accelerator.accumulate(adapter):
                if encoders is not None:
                    batch = {**batch, **encoders(batch["image"], batch["caption"])}
                x0 = batch["x0"].to(device, weight_dtype)
                grid, mask = draw_condition(batch["y"].to(device), batch["small"], cfg.max_channels, cfg.p_ssim,
                                            cfg.p_coarse, rng)
                shift = math.exp(time_shift_mu(pipe.scheduler, x0.shape[1]))
                t = sample_timesteps(x0.shape[0], shift=shift).to(device)
                noise = torch.randn_like(x0)
                with accelerator.autocast():
                    loss = adapter_loss(transformer, adapter, x0, grid.to(weight_dtype), mask,
                                        batch["prompt_embeds"].to(device, weight_dtype),
                                        batch["pooled"].to(device, weight_dtype), t, noise, guidance)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(adapter.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            window.append(accelerator.gather(loss.detach()[None]).mean().item())
            if not accelerator.sync_gradients:
                continue
            step += 1
            schedule.step()
            bar.update(1)
            last = sum(window) / len(window)
            first = last if first is None else first
            bar.set_postfix(loss=f"{last:.4f}")
            if accelerator.is_main_process and (step % cfg.log_every == 0 or step == 1 or step == cfg.steps):
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, "loss": last, "lr": schedule.get_last_lr()[0],
                                        "seconds": round(time.time() - t0, 2)}) + "\n")
            window = []
            if step % cfg.save_every == 0 or step == cfg.steps:
                _save_checkpoint(accelerator, out, step, cfg.keep)
            if step >= cfg.steps:
                break
    bar.close()

    # 5. The final adapter, in the folder format that adapter=PATH loads.
    accelerator.wait_for_everyone()
    final = out / "adapter"
    if accelerator.is_main_process:
        accelerator.unwrap_model(adapter).save_pretrained(str(final), safe_serialization=True)
    accelerator.end_training()
    return {"steps": step, "first_loss": first, "last_loss": last, "adapter": str(final)}


def _latent_channels(cfg: AdapterTrainConfig) -> int:
    from ..presets import get_preset

    return get_preset(cfg.preset).latent_channels


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> None:
    accelerator.wait_for_everyone()
    path = out / "checkpoints" / f"step-{step:07d}"
    accelerator.save_state(str(path), safe_serialization=True)
    if accelerator.is_main_process:
        for old in _checkpoints(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
