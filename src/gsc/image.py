"""Reading and writing images: every input mode becomes RGB float in [0, 1]."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import GSCError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}  # what folders are read for
MIN_SIZE = 16  # the latent grid is 1/16 of the image: smaller images have no latent position


def to_rgb_array(img) -> np.ndarray:
    """PIL image of any mode → (H, W, 3) float32 in [0, 1]. Alpha is composited on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / peak, 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "F":
        a = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as (3, H, W) float in [0, 1]; one-line GSCError for user mistakes."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise GSCError(f"no such file: {path}")
    if path.is_dir():
        raise GSCError(f"{path} is a folder, not an image")
    try:
        with Image.open(path) as img:
            img.load()
            arr = to_rgb_array(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise GSCError(f"{path} is not a readable image ({type(e).__name__})") from None
    h, w = arr.shape[:2]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise GSCError(f"{path} is {w}×{h}; images must be at least {MIN_SIZE}×{MIN_SIZE} pixels")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def as_image_tensor(image) -> torch.Tensor:
    """Accept a path, a PIL image, an (H, W, 3) uint8 array or a (3, H, W) float tensor."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, torch.Tensor):
        t = image.detach().float()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise GSCError(f"image tensor must be (3, H, W), got {tuple(image.shape)}")
        return t.clamp(0, 1)
    if isinstance(image, np.ndarray):
        a = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(a[..., :3].transpose(2, 0, 1))).clamp(0, 1)
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return torch.from_numpy(np.ascontiguousarray(to_rgb_array(image).transpose(2, 0, 1)))
    except ImportError:
        pass
    raise GSCError(f"cannot read an image from a {type(image).__name__}")


def pad_to_multiple(image: torch.Tensor, multiple: int = 16) -> torch.Tensor:
    """Replicate-pad (3, H, W) to multiples of ``multiple``; the receiver crops back to the true size."""
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return image
    return F.pad(image[None], (0, pw, 0, ph), mode="replicate")[0]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float → (H, W, 3) uint8, rounding half up so the bytes are reproducible."""
    return (image.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """Write atomically: a temporary file in the same folder, renamed when complete."""
    from PIL import Image

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), "PNG")
    write_atomic(path, lambda f: Image.fromarray(to_uint8(image)).save(f, format=fmt))


def write_atomic(path: str | Path, writer) -> None:
    """Call ``writer(fileobj)`` on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise GSCError(f"output folder does not exist: {parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
