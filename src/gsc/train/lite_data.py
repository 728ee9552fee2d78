"""Training data of the lite preset: BSDS500 images with their caption embeddings and TAEF2 latents.

- ``codec`` crops: random position, rescaled by 0.8–1.25, flipped, plus the
  image's caption embedding (zero for a dropped caption).
- ``latent`` crops: aligned to the 16-pixel grid of the stored image so that the TAEF2 latent of the
  whole image (computed once, ``cache_latents``) can be cropped beside it at 1/8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..image import list_dataset, load_image


def _crop16(img: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[-2:]
    return img[..., : h // 16 * 16, : w // 16 * 16]


class LiteData:
    """Images of some BSDS500 splits (uint8, cropped to multiples of 16) and their caption keys."""

    def __init__(self, root: str | Path, splits: tuple[str, ...] = ("train", "val")):
        root = Path(root)
        self.keys, self.images = [], []
        for split in splits:
            for p in list_dataset(root / split):
                self.keys.append(f"{split}/{p.name}")
                self.images.append(_crop16((load_image(p) * 255).round().to(torch.uint8)))
        if not self.images:
            raise FileNotFoundError(f"no images in {root} ({', '.join(splits)})")
        self.text = torch.zeros(len(self.images), 384)
        self.latents: list[torch.Tensor] | None = None  # [(2, 32, H/8, W/8)]: plain and flipped

    def __len__(self) -> int:
        return len(self.images)

    def set_captions(self, table: dict[str, str], embed) -> int:
        """Embed the captions of the images that have one; returns how many do."""
        keys = [k for k in self.keys if k in table]
        if keys:
            vectors = embed([table[k] for k in keys])
            for k, v in zip(keys, vectors):
                self.text[self.keys.index(k)] = v
        return len(keys)

    def text_batch(self, idx: list[int], rng: np.random.Generator, p_drop: float) -> torch.Tensor:
        keep = torch.from_numpy(rng.random(len(idx)) >= p_drop).float()[:, None]
        return self.text[idx] * keep

    def codec_batch(self, n: int, crop: int, rng: np.random.Generator,
                    scale: tuple[float, float] = (0.8, 1.25)) -> tuple[torch.Tensor, list[int]]:
        out, idx = [], []
        for _ in range(n):
            i = int(rng.integers(len(self.images)))
            img = self.images[i]
            size = min(int(np.ceil(crop / float(rng.uniform(*scale)))), *img.shape[-2:])
            y, x = rng.integers(0, img.shape[1] - size + 1), rng.integers(0, img.shape[2] - size + 1)
            patch = img[:, y:y + size, x:x + size].float()[None] / 255
            if size != crop:
                patch = F.interpolate(patch, size=(crop, crop), mode="bilinear", align_corners=False,
                                      antialias=size > crop)
            if rng.random() < 0.5:
                patch = patch.flip(-1)
            out.append(patch.clamp(0, 1))
            idx.append(i)
        return torch.cat(out), idx

    def latent_batch(self, n: int, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Aligned crops: images (n, 3, crop, crop) and their TAEF2 latents (n, 32, crop/8, crop/8)."""
        assert self.latents is not None, "cache_latents first"
        xs, zs, idx = [], [], []
        for _ in range(n):
            i = int(rng.integers(len(self.images)))
            img, lat = self.images[i], self.latents[i]
            flip = int(rng.random() < 0.5)
            if flip:
                img = img.flip(-1)
            h, w = img.shape[-2:]
            by, bx = rng.integers(0, (h - crop) // 16 + 1), rng.integers(0, (w - crop) // 16 + 1)
            y, x = 16 * int(by), 16 * int(bx)
            xs.append(img[:, y:y + crop, x:x + crop].float() / 255)
            zs.append(lat[flip, :, y // 8:(y + crop) // 8, x // 8:(x + crop) // 8].float())
            idx.append(i)
        return torch.stack(xs), torch.stack(zs), idx

    @torch.no_grad()
    def cache_latents(self, path: str | Path, encoder, progress=None) -> None:
        """TAEF2 latents of every image and its mirror, computed once and kept in ``path`` (fp16)."""
        path = Path(path)
        if path.exists():
            state = torch.load(path, weights_only=True)
            if state["keys"] == self.keys:
                self.latents = state["latents"]
                return
        latents = []
        for img in (progress(self.images) if progress else self.images):
            x = img.float()[None] / 255
            latents.append(torch.cat([encoder(x), encoder(x.flip(-1))]).half())
        tmp = path.with_suffix(".tmp")
        torch.save({"keys": self.keys, "latents": latents}, tmp)
        tmp.replace(path)
        self.latents = latents


def load_caption_table(*paths: str | Path) -> dict[str, str]:
    table: dict[str, str] = {}
    for p in paths:
        table.update({k: v for k, v in json.loads(Path(p).read_text(encoding="utf-8")).items()
                      if not k.startswith("_")})
    return table
