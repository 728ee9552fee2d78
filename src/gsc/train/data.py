"""Image folders for training: decoded once into memory, then random crops and flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..image import IMAGE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_rgb(path: str | Path) -> torch.Tensor:
    """(3, H, W) float in [0, 1]."""
    from ..image import load_image

    return load_image(path)


class CropDataset:
    """All images of some folders held as uint8; ``batch()`` draws random rescaled crops."""

    def __init__(self, folders: list[str | Path], crop: int = 128, scale: tuple[float, float] = (0.8, 1.25)):
        self.images = []
        for folder in folders:
            for p in list_images(folder):
                self.images.append((load_rgb(p) * 255).round().to(torch.uint8))
        if not self.images:
            raise ValueError(f"no images found in {', '.join(map(str, folders))}")
        self.crop = crop
        self.scale = scale

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        out = []
        for _ in range(n):
            img = self.images[rng.integers(len(self.images))]
            s = float(rng.uniform(*self.scale))
            size = int(np.ceil(self.crop / s))
            h, w = img.shape[-2:]
            size = min(size, h, w)
            y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            patch = img[:, y:y + size, x:x + size].float()[None] / 255
            if size != self.crop:
                patch = F.interpolate(patch, size=(self.crop, self.crop), mode="bilinear", align_corners=False,
                                      antialias=size > self.crop)
            if rng.random() < 0.5:
                patch = patch.flip(-1)
            out.append(patch.clamp(0, 1))
        return torch.cat(out)
