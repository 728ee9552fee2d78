"""``gsc train-adapter``, the algorithm's parts: train the FLUX adapter on captioned images, base frozen.

Per sample: the sender's latent encoder gives y (N channels at 1/16); a quantization step Δ (1, or one
of the stream's steps), C ~ U{1..max_channels} and an index set (the C best by SSIM with probability
``p_ssim``, else C random channels) give the condition ŷ_sel = Δ·round(y/Δ) on the selected channels.
The target image goes through the FLUX VAE and is packed into tokens, x_0. Then, as FLUX:

    t ~ logit-normal, shifted as the scheduler shifts    (gsc.generate.rectified_flow.sample_timesteps)
    x_t = (1 − t)·x_0 + t·ε,  loss = ‖v̂(x_t, t, caption, adapter(ŷ_sel)) − (ε − x_0)‖²

Only the adapter learns. C = 0 is never trained: the pipeline runs the base alone there.

This module holds the settings (:class:`AdapterTrainConfig`), what the run takes from its preset
(:class:`FluxSetup`, looked up once), the frozen encoders, the condition draw, the loss and the
sharded precompute. :mod:`.trainer` runs them; :mod:`.data` reads the images and the cache.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import GSCError
from ..format.tables import STEPS
from ..generate.rectified_flow import flow_matching_loss, interpolate
from ..latent.selection import select_channels
from .adapter_config import AdapterTrainConfig  # noqa: F401 (the settings live there, torch-free)

PRECOMPUTE = ("none", "text", "all")
CACHE_PARTS = {"none": (), "text": ("text",), "all": ("text", "image")}

COARSE_STEPS = [s for s in STEPS if s > 1.0]   # the steps a sender coarsens to from the default 1.0 (--max-bpp)


def read_captions(path: str | Path | None) -> dict[str, str]:
    from ..caption.captioners import load_captions

    return {} if path is None else load_captions(path)


# --- what the run takes from its preset ---------------------------------------------------------------

@dataclass
class FluxSetup:
    """Everything train-adapter takes from the preset, looked up once."""

    preset: str
    generator: str              # "flux" or "flux-tiny"
    model: str | None           # base: HF id or folder (None for flux-tiny's seeded base)
    seed: int                   # flux-tiny's base seed
    guidance: float
    steps: int                  # the preset's sampling steps (validation images)
    max_sequence_length: int
    latent: str                 # latent encoder name and options
    latent_kwargs: dict
    latent_channels: int

    @classmethod
    def from_config(cls, cfg: AdapterTrainConfig) -> "FluxSetup":
        from ..presets import get_preset

        p = get_preset(cfg.preset)
        if p.generator not in ("flux", "flux-tiny"):
            raise GSCError(f"train-adapter trains the FLUX adapter; preset {cfg.preset!r} uses {p.generator!r}")
        kw = p.generator_kwargs
        if p.generator == "flux-tiny" and cfg.model:
            raise GSCError("--model does not apply to flux-tiny: its base is built from a seed")
        latent_kwargs = dict(p.latent_kwargs)
        if cfg.latent_checkpoint and not Path(cfg.latent_checkpoint).is_file():
            raise GSCError(f"CompressAI checkpoint not found: {cfg.latent_checkpoint}")
        if cfg.latent_checkpoint:  # a checkpoint replaces the zoo download (and flux-tiny's random weights)
            latent_kwargs.pop("random_init_seed", None)
            latent_kwargs["checkpoint"] = cfg.latent_checkpoint
        from ..generate.flux_tiny import TINY_MAX_SEQUENCE_LENGTH

        tiny = p.generator == "flux-tiny"
        guidance = cfg.guidance if cfg.guidance is not None else kw.get("guidance", 3.5)
        return cls(preset=p.name, generator=p.generator, model=None if tiny else cfg.model or kw.get("model"),
                   seed=kw.get("seed", 0), guidance=guidance,
                   steps=p.steps, max_sequence_length=cfg.max_sequence_length or kw.get(
                       "max_sequence_length", TINY_MAX_SEQUENCE_LENGTH if tiny else 512),
                   latent=p.latent, latent_kwargs=latent_kwargs, latent_channels=p.latent_channels)

    def components(self, dtype: torch.dtype) -> dict:
        """The frozen base's FluxPipeline components on the CPU, in ``dtype``."""
        if self.generator == "flux-tiny":
            from ..generate.flux_tiny import tiny_components

            return {k: v.to(dtype) if isinstance(v, torch.nn.Module) and v.dtype != dtype else v
                    for k, v in tiny_components(self.seed).items()}
        from ..generate.flux_pipeline import load_base

        return load_base(self.model, dtype)

    def latent_encoder(self):
        from ..latent.encoders import LATENT_ENCODERS

        return LATENT_ENCODERS.create(self.latent, **self.latent_kwargs)

    def cache_settings(self, cfg: AdapterTrainConfig, captions: dict[str, str]) -> dict:
        """What the cached encodings depend on: a cache made with other settings is rebuilt."""
        import hashlib

        digest = hashlib.sha256(json.dumps(captions, sort_keys=True).encode()).hexdigest()
        return {"preset": self.preset, "model": self.model, "seed": self.seed, "latent": self.latent,
                "latent_kwargs": self.latent_kwargs, "resolution": cfg.resolution,
                "max_sequence_length": self.max_sequence_length, "data": str(Path(cfg.data).resolve()),
                "captions_sha256": digest}


# --- encoding: what the sender and the frozen base make of one image --------------------------------

class Encoders:
    """The frozen encoders: FLUX's VAE and text encoders (through the pipeline) and the sender's g_a."""

    def __init__(self, pipe, latent_encoder, device: torch.device, max_sequence_length: int):
        self.pipe, self.latent_encoder, self.device = pipe, latent_encoder, device
        self.max_sequence_length = max_sequence_length

    @torch.no_grad()
    def text(self, captions: Sequence[str]) -> dict:
        """→ prompt_embeds (B, L, 4096) T5 sequence, pooled (B, 768) CLIP."""
        prompt, pooled, _ = self.pipe.encode_prompt(list(captions), device=self.device,
                                                    max_sequence_length=self.max_sequence_length)
        return {"prompt_embeds": prompt, "pooled": pooled}

    @torch.no_grad()
    def image(self, images: torch.Tensor) -> dict:
        """(B, 3, R, R) in [0, 1] → x0 (B, L, 64) packed VAE latent, y (B, N, h, w), small (B, 3, h, w)."""
        from ..generate.flux_adapter import pack_latents

        images = images.to(self.device)
        vae = self.pipe.vae
        lat = vae.encode((images * 2 - 1).to(vae.dtype)).latent_dist.mode()
        x0 = pack_latents((lat - vae.config.shift_factor) * vae.config.scaling_factor)
        y = torch.stack([self.latent_encoder.analyse(img.float()) for img in images])
        # The SSIM selection only sees the image area-averaged to the latent grid: keep just that.
        small = F.adaptive_avg_pool2d(images.float(), y.shape[-2:])
        return {"x0": x0, "y": y, "small": small}

    def __call__(self, images: torch.Tensor, captions: Sequence[str]) -> dict:
        return {**self.image(images), **self.text(captions)}


def latent_encoder_to(encoder, device) -> None:
    """Move a latent encoder's network(s) (attributes that are modules) to ``device``."""
    for value in vars(encoder).values():
        if isinstance(value, torch.nn.Module):
            value.to(device)


def draw_condition(y: torch.Tensor, small: torch.Tensor, max_channels: int, p_ssim: float, p_coarse: float,
                   rngs: Sequence[random.Random]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, with its own rng: Δ, C and an index set.

    Returns the (B, N, h, w) grid of ŷ_sel (zeros elsewhere) and the (B, N) mask.
    """
    b, n = y.shape[:2]
    grid, mask = torch.zeros_like(y), torch.zeros(b, n, device=y.device)
    for i, rng in zip(range(b), rngs, strict=True):
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
    from ..generate.flux_adapter import latent_image_ids

    b, _, h, w = grid.shape
    device, dtype = x0.device, transformer.dtype
    img_ids = latent_image_ids(h, w, device, dtype)
    txt_ids = torch.zeros(prompt_embeds.shape[1], 3, device=device, dtype=dtype)
    g = torch.full((b,), guidance, device=device) if transformer.config.guidance_embeds else None
    x_t = interpolate(x0, noise, t)
    kw = dict(encoder_hidden_states=prompt_embeds, pooled_projections=pooled, timestep=t.to(x_t.dtype),
              img_ids=img_ids, txt_ids=txt_ids, guidance=g)
    blocks, singles = adapter(x_t, grid, mask, **kw)
    v = transformer(hidden_states=x_t, controlnet_block_samples=blocks, controlnet_single_block_samples=singles,
                    return_dict=False, **kw)[0]
    return flow_matching_loss(v.float(), x0.float(), noise.float())


# --- the cache: encode every image once, split between the processes ----------------------------------

# Stored in bf16 (T5's sequence is 512 × 4096: 4 MB an image instead of 8), except y and the small image:
# the condition rounds y/Δ exactly as the sender does, and bf16 would move values across rounding edges.
STORED_DTYPE = {"x0": torch.bfloat16, "prompt_embeds": torch.bfloat16, "pooled": torch.bfloat16,
                "y": torch.float32, "small": torch.float32}
PART_TENSORS = {"text": ("prompt_embeds", "pooled"), "image": ("x0", "y", "small")}


def image_digests(images) -> dict[str, str]:
    """SHA-256 of each image file's bytes, by key: an image replaced in place is encoded again."""
    import hashlib

    digests = {}
    for key in images.keys:
        h = hashlib.sha256()
        with open(images.folder / key, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests[key] = h.hexdigest()
    return digests


def prepare_cache(cache, settings: dict, accelerator, images=None) -> None:
    """Keep the cache if it was made with ``settings`` (a crashed run resumes), else start it afresh.

    The manifest also keeps each of ``images``' file digests (:func:`image_digests`): an image whose file
    changed since (or that is new) loses its cached encodings, so it is encoded again.
    """
    import shutil

    manifest = cache.root / "manifest.json"
    if accelerator.is_main_process:
        old = json.loads(manifest.read_text()) if manifest.exists() else None
        if old is not None and old.get("settings") != settings:
            shutil.rmtree(cache.root)
            old = None
        cache.root.mkdir(parents=True, exist_ok=True)
        known = (old or {}).get("images", {})
        digests = image_digests(images) if images is not None else {}
        for key, digest in digests.items():
            if known.get(key) != digest:
                for part in PART_TENSORS:
                    cache.path(part, key).unlink(missing_ok=True)
        manifest.write_text(json.dumps({"settings": settings, "images": {**known, **digests}}, indent=1))
    accelerator.wait_for_everyone()


def precompute(cache, parts: Sequence[str], images, encoders: Encoders, accelerator, batch: int,
               workers: int) -> int:
    """Encode the centre crops (``parts`` ⊆ {"text", "image"}) of every image missing from the cache.

    The missing images are split between the processes (process p takes every P-th) and encoded in
    batches; each process writes its own files. Returns how many images this process encoded.
    """
    from tqdm import tqdm

    missing = [i for i, key in enumerate(images.keys) if not all(cache.has(p, key) for p in parts)]
    accelerator.wait_for_everyone()  # every process has listed the same files before any is written
    mine = missing[accelerator.process_index::accelerator.num_processes]
    if "image" in parts:
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(images, mine), batch_size=batch,
                                             num_workers=workers)
    else:  # captions only: no image is read
        keys = [images.keys[i] for i in mine]
        loader = [{"key": keys[j:j + batch], "caption": [images.caption(k) for k in keys[j:j + batch]]}
                  for j in range(0, len(keys), batch)]
    bar = tqdm(loader, desc=f"precompute ({'+'.join(parts)})", dynamic_ncols=True,
               disable=not accelerator.is_local_main_process)
    for item in bar:
        enc = {}
        if "image" in parts:
            enc.update(encoders.image(item["image"]))
        if "text" in parts:
            enc.update(encoders.text(item["caption"]))
        for i, key in enumerate(item["key"]):
            for part in parts:
                cache.write(part, key, {k: enc[k][i].to(STORED_DTYPE[k]) for k in PART_TENSORS[part]})
    print(f"precompute: process {accelerator.process_index} of {accelerator.num_processes} encoded {len(mine)} "
          f"of {len(images)} images ({'+'.join(parts)})", flush=True)
    accelerator.wait_for_everyone()
    return len(mine)
