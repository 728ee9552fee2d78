"""Reading and writing images: every input mode becomes RGB float in [0, 1].

torch is imported inside the functions that need it, so that ``gsc info`` (which reads files through
``read_regular_file``) stays torch-free."""

from __future__ import annotations

import os
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import GSCError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}  # what folders are read for
MIN_SIZE = 16  # the latent grid is 1/16 of the image: smaller images have no latent position


def _scaled(a: np.ndarray, what: str) -> np.ndarray:
    """Integer or float samples → [0, 1] by their real range: floats already in [0, 1] as they are, whole
    numbers by the 8- or 16-bit range they fit; anything else is refused rather than clipped."""
    if a.size == 0:
        return a
    if not np.isfinite(a).all():
        raise GSCError(f"{what} has non-finite samples (NaN or infinity)")
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0 and hi <= 1 and np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    whole = bool(np.all(a == np.round(a)))
    if lo >= 0 and whole and hi <= 65535:
        return (a / (255.0 if hi <= 255 else 65535.0)).astype(np.float32)
    raise GSCError(f"{what} has samples in [{lo:g}, {hi:g}]: not 0–1, nor whole numbers in 0–255 or 0–65535; "
                   f"convert it to an 8- or 16-bit image first")


def to_rgb_array(img, what: str = "image") -> np.ndarray:
    """PIL image of any mode → (H, W, 3) float32 in [0, 1]. Alpha is composited on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img)
        if img.mode.startswith("I;16"):
            a = a.astype(np.float32) / 65535.0
        else:
            a = _scaled(a.astype(np.float64), what)
        return np.repeat(a[..., None], 3, axis=2).astype(np.float32)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _regular_file(path: Path, what: str) -> None:
    if not path.exists():
        raise GSCError(f"no such file: {path}")
    if path.is_dir():
        raise GSCError(f"{path} is a folder, not {what}")
    if not stat.S_ISREG(path.stat().st_mode):
        raise GSCError(f"{path} is not a regular file (a device, pipe or socket), not {what}")


def read_regular_file(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, counted as they are read (``stat`` can lie)."""
    path = Path(path)
    _regular_file(path, what)
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise GSCError(f"{path} is larger than any gsc stream ({limit} bytes)")
    return data


def check_output(output: str | Path, source: str | Path) -> None:
    """Refuse, before any work, an output that is the input or a folder, or whose folder is missing."""
    output, source = Path(output), Path(source)
    if output.is_dir():
        raise GSCError(f"output {output} is a folder; give a file name")
    if source.exists() and (output.resolve() == source.resolve()
                            or output.exists() and os.path.samefile(output, source)):
        raise GSCError(f"output {output} is the input; give another file name")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise GSCError(f"output folder does not exist: {parent}")


def load_image(path: str | Path) -> "torch.Tensor":
    """Read an image file as (3, H, W) float in [0, 1]; one-line GSCError for user mistakes.

    The size is checked from the file's header before any pixel is decoded; EXIF orientation is applied;
    animated images are refused (gsc codes still images)."""
    import torch
    from PIL import Image, ImageOps, UnidentifiedImageError

    from .format.container import MAX_PIXELS, MAX_SIDE

    path = Path(path)
    _regular_file(path, "an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit is lower
            img = Image.open(path)
        with img:
            w, h = img.size
            if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
                raise GSCError(f"{path} is {w}×{h}; the format's limit is {MAX_SIDE} px a side and "
                               f"{MAX_PIXELS / 1e6:.1f} Mpx")
            if getattr(img, "n_frames", 1) > 1:
                raise GSCError(f"{path} is animated ({img.n_frames} frames); gsc codes still images: "
                               f"extract one frame first")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # e.g. corrupt EXIF: the pixels are what matter
                img.load()
                img = ImageOps.exif_transpose(img)
            arr = to_rgb_array(img, str(path))
    except Image.DecompressionBombError:
        raise GSCError(f"{path} is over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx; the format's limit is "
                       f"{MAX_SIDE} px a side and {MAX_PIXELS / 1e6:.1f} Mpx") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise GSCError(f"{path} is not a readable image ({type(e).__name__})") from None
    h, w = arr.shape[:2]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise GSCError(f"{path} is {w}×{h}; images must be at least {MIN_SIZE}×{MIN_SIZE} pixels")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def as_image_tensor(image) -> "torch.Tensor":
    """Accept a path, a PIL image, an (H, W, 3) uint8 / uint16 / float [0, 1] array or a (3, H, W) float tensor."""
    import torch

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
        a = image.astype(np.float32) / {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(a[..., :3].transpose(2, 0, 1))).clamp(0, 1)
    from PIL import Image  # pillow is a dependency: no fallback for its absence

    if isinstance(image, Image.Image):
        return torch.from_numpy(np.ascontiguousarray(to_rgb_array(image).transpose(2, 0, 1)))
    raise GSCError(f"cannot read an image from a {type(image).__name__}")


def pad_to_multiple(image: "torch.Tensor", multiple: int = 16) -> "torch.Tensor":
    """Replicate-pad (3, H, W) to multiples of ``multiple``; the receiver crops back to the true size."""
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return image
    return F.pad(image[None], (0, pw, 0, ph), mode="replicate")[0]


def to_uint8(image: "torch.Tensor") -> np.ndarray:
    """(3, H, W) float → (H, W, 3) uint8, rounding half up so the bytes are reproducible."""
    import torch

    return (image.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()


def save_image(image: "torch.Tensor", path: str | Path) -> None:
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


def list_dataset(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The images directly in ``folder`` (``IMAGE_SUFFIXES``), sorted, the first ``limit``; GSCError when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GSCError(f"dataset folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise GSCError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return paths[:limit] if limit else paths
