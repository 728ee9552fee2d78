"""Classical codecs at a byte budget: downscale, encode, decode, upscale (bicubic), measure.

At 0.01 bpp a 768×512 image has 491 bytes, which no classical codec reaches at full size. So for each
image, codec and target the search tries every downscaled size on a geometric grid (``steps_per_octave``
sizes per halving, from full size down to 1/``max_downscale``) and, per size, binary-searches the
highest quality whose file fits the budget (file size grows with quality). Each fitting file is
decoded, upscaled bicubically to full size, rounded to 8 bits and scored by PSNR; the best PSNR wins.
bpp is the whole file's bits over the original's H·W.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GSCError
from ..registry import Registry
from .results import curve, markdown_table, mean


@dataclass(frozen=True)
class ClassicalCodec:
    name: str
    label: str                                  # the name on plots and tables
    qualities: tuple[int, int]                  # inclusive range; file size grows with quality
    encode: Callable[[np.ndarray, int], bytes]  # (H, W, 3) uint8, quality → file bytes
    decode: Callable[[bytes], np.ndarray]       # file bytes → (H, W, 3) uint8
    settings: str = ""                          # what else is fixed, for the record


CODECS: Registry[ClassicalCodec] = Registry("classical codec")


def _imagecodecs():
    import imagecodecs

    return imagecodecs


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


@CODECS.register("webp")
def _webp() -> ClassicalCodec:
    ic = _imagecodecs()
    return ClassicalCodec(
        "webp", "WebP", (0, 100),
        lambda a, q: ic.webp_encode(a, level=q, lossless=False, method=6),
        lambda b: _rgb(ic.webp_decode(b)),
        settings="libwebp lossy, method 6")


@CODECS.register("jxl")
def _jxl() -> ClassicalCodec:
    ic = _imagecodecs()
    return ClassicalCodec(
        "jxl", "JPEG XL", (0, 99),  # 100 is lossless
        lambda a, q: ic.jpegxl_encode(a, level=q, effort=7, numthreads=1),
        lambda b: _rgb(ic.jpegxl_decode(b)),
        settings="libjxl effort 7, quality → distance by libjxl")


@CODECS.register("avif")
def _avif() -> ClassicalCodec:
    ic = _imagecodecs()
    return ClassicalCodec(
        "avif", "AVIF", (0, 99),  # 100 is lossless
        lambda a, q: ic.avif_encode(a, level=q, speed=4, pixelformat="420", numthreads=1),
        lambda b: _rgb(ic.avif_decode(b)),
        settings="libavif speed 4, 4:2:0")


@CODECS.register("jpeg")
def _jpeg() -> ClassicalCodec:
    from PIL import Image

    def encode(a: np.ndarray, q: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=q, optimize=True)
        return buf.getvalue()

    def decode(b: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(b)) as im:
            return _rgb(np.asarray(im.convert("RGB")))

    return ClassicalCodec("jpeg", "JPEG", (1, 100), encode, decode,
                          settings="Pillow/libjpeg, optimized Huffman tables, 4:2:0")


@lru_cache(maxsize=None)
def get_codec(name: str) -> ClassicalCodec:
    return CODECS.create(name)


@dataclass(frozen=True)
class SearchGrid:
    """Downscaled sizes: full size / 2^(k / steps_per_octave) for k = 0 … log2(max_downscale)·steps."""

    max_downscale: float = 32.0
    steps_per_octave: int = 16

    def sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        n = round(math.log2(self.max_downscale) * self.steps_per_octave)
        out: list[tuple[int, int]] = []
        for k in range(n, -1, -1):  # smallest first: the search stops once sizes stop fitting
            d = 2.0 ** (k / self.steps_per_octave)
            size = (max(1, round(width / d)), max(1, round(height / d)))
            if size not in out:
                out.append(size)
        return out

    def tag(self) -> str:
        return f"1/{self.max_downscale:g}..1, {self.steps_per_octave}/octave"


def resize(a: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 at ``size`` = (width, height). Downscaling is antialiased (Lanczos)."""
    from PIL import Image

    if (a.shape[1], a.shape[0]) == size:
        return a
    f = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC}[method]
    return np.asarray(Image.fromarray(a).resize(size, f))


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    m = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0 ** 2
    return math.inf if m == 0 else 10 * math.log10(1.0 / m)


@dataclass
class Candidate:
    size: tuple[int, int]
    quality: int
    data: bytes
    recon: np.ndarray  # full size, uint8
    psnr: float


def best_quality_that_fits(codec: ClassicalCodec, small: np.ndarray, budget: int,
                           encode=None) -> tuple[int, bytes] | None:
    """The highest quality whose file is ≤ ``budget`` bytes, by binary search; None if none fits.

    Sizes are monotone in quality up to a few bytes, so after the search a few higher qualities are
    probed too: the answer never misses a fitting quality just above a non-monotone step.
    """
    enc = encode or codec.encode
    lo, hi = codec.qualities
    first = enc(small, lo)
    if len(first) > budget:
        return None
    best = (lo, first)
    left, right = lo + 1, hi
    while left <= right:
        mid = (left + right) // 2
        data = enc(small, mid)
        if len(data) <= budget:
            best, left = (mid, data), mid + 1
        else:
            right = mid - 1
    q = best[0] + 1
    misses = 0
    while q <= hi and misses < 2:
        data = enc(small, q)
        if len(data) <= budget:
            best, misses = (q, data), 0
        else:
            misses += 1
        q += 1
    return best


def search(codec: ClassicalCodec, image: np.ndarray, budget_bytes: int,
           grid: SearchGrid = SearchGrid()) -> Candidate | None:
    """Best-PSNR (downscaled size, quality) whose file fits ``budget_bytes``; None if nothing fits."""
    h, w = image.shape[:2]
    best: Candidate | None = None
    misses = 0
    memo: dict[tuple, bytes] = {}

    for size in grid.sizes(w, h):
        small = resize(image, size, "lanczos")

        def enc(a, q, _size=size):
            key = (_size, q)
            if key not in memo:
                memo[key] = codec.encode(a, q)
            return memo[key]

        found = best_quality_that_fits(codec, small, budget_bytes, enc)
        if found is None:
            # files only grow with the size: three misses in a row end the search
            misses += 1
            if misses >= 3 and best is not None:
                break
            continue
        misses = 0
        q, data = found
        recon = resize(codec.decode(data), (w, h), "bicubic")
        p = psnr_u8(recon, image)
        if best is None or p > best.psnr or (p == best.psnr and len(data) < len(best.data)):
            best = Candidate(size, q, data, recon, p)
    return best


def measure(path, codec_name: str, target: float, grid: SearchGrid = SearchGrid(),
            recon_dir=None) -> dict:
    """The record of one image, codec and target: the best-PSNR file that fits, or ``fit: False``."""
    import torch

    from ..image import load_image
    from .metrics import ms_ssim

    torch.set_num_threads(1)
    original = load_image(path)
    image = np.ascontiguousarray((original * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy())
    h, w = image.shape[:2]
    budget = math.floor(target * w * h / 8)
    rec = {"image": path.name, "codec": codec_name, "target_bpp": target, "width": w, "height": h,
           "budget_bytes": budget}
    found = search(get_codec(codec_name), image, budget, grid)
    if found is None:
        return {**rec, "fit": False}
    recon = torch.from_numpy(found.recon.copy()).permute(2, 0, 1).double() / 255
    rec.update(fit=True, bytes=len(found.data), bpp=len(found.data) * 8 / (w * h), psnr=found.psnr,
               ms_ssim=ms_ssim(recon, original), scaled_width=found.size[0], scaled_height=found.size[1],
               quality=found.quality)
    if recon_dir is not None:
        from PIL import Image

        from ..image import write_atomic

        folder = Path(recon_dir) / f"{codec_name}_{target:g}"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / f"{path.stem}.png", lambda f: Image.fromarray(found.recon).save(f, format="PNG"))
    return rec


def _measure_job(args):
    return measure(*args)


def versions() -> dict:
    import imagecodecs
    import PIL

    return {"imagecodecs": imagecodecs.__version__, "pillow": PIL.__version__}


def parse_targets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GSCError(f"--target-bpp must be comma-separated numbers, got {text!r}") from None
    if not values or any(not (0 < v < 64) for v in values):
        raise GSCError(f"--target-bpp values must be in (0, 64), got {text!r}")
    return sorted(set(values))


def parse_codecs(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    for n in names:
        CODECS.get(n)  # one-line error naming the choices
    if not names:
        raise GSCError("--codecs needs at least one codec")
    return list(dict.fromkeys(names))


def summarize(records: list[dict], codecs: list[str], targets: list[float], n_images: int,
              dataset: str, grid: SearchGrid) -> dict:
    """A bundle: one CompressAI curve per codec, a point per target where every image fits."""
    curves, missing = [], []
    for name in codecs:
        codec = get_codec(name)
        points = []
        for t in targets:
            recs = [r for r in records if r["codec"] == name and r["target_bpp"] == t]
            fit = [r for r in recs if r["fit"]]
            if len(fit) < n_images:
                missing.append({"codec": name, "target_bpp": t, "images_fit": len(fit), "images": n_images})
                continue
            points.append({"target_bpp": t, "images": len(fit), "bpp": mean(r["bpp"] for r in fit),
                           "psnr": mean(r["psnr"] for r in fit), "ms_ssim": mean(r["ms_ssim"] for r in fit),
                           "bytes": mean(r["bytes"] for r in fit),
                           "scaled_width": mean(r["scaled_width"] / r["width"] for r in fit)})
        description = (f"{codec.label} ({codec.settings}) on {dataset}: per image the best-PSNR downscaled "
                       f"size ({grid.tag()}) × quality whose file fits the target; bicubic upscale; "
                       "bpp = file bits / original H·W")
        curves.append(curve(codec.label, description, points, kind="classical", codec=name, points=points))
    return {"name": f"classical codecs on {dataset}", "description": "see each curve",
            "targets": targets, "codecs": codecs, "versions": versions(), "curves": curves,
            "missing": missing, "per_image": sorted(records, key=lambda r: (r["codec"], r["target_bpp"], r["image"]))}


def classical_table(bundle: dict) -> str:
    rows = []
    for c in bundle["curves"]:
        entries = [(p["target_bpp"], p) for p in c["points"]]
        entries += [(m["target_bpp"], m) for m in bundle["missing"] if m["codec"] == c["codec"]]
        for t, e in sorted(entries, key=lambda x: x[0]):
            if "images_fit" in e:  # a target that not every image reaches: no point, never a partial mean
                rows.append([c["name"], f"{t:g}", f"{e['images_fit']}/{e['images']}", "no point",
                             None, None, None, None])
            else:
                rows.append([c["name"], f"{t:g}", f"{e['images']}/{e['images']}", e["bpp"], e["psnr"],
                             e["ms_ssim"], f"{e['bytes']:.1f}", f"1/{1 / e['scaled_width']:.1f}"])
    headers = ["codec", "target bpp", "images fit", "bpp", "PSNR (dB)", "MS-SSIM", "mean bytes",
               "mean width"]
    return markdown_table(headers, rows)


def run_bench(dataset, codecs: list[str], targets: list[float], out, *, grid: SearchGrid = SearchGrid(),
              workers: int = 1, resume: bool = False, limit: int | None = None, save_recon=None,
              doc=None, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    from .evaluate import list_dataset
    from .plot import plot_rd
    from .results import RecordCache, file_digest, output_paths, update_section, write_json

    paths = output_paths(out)
    images = list_dataset(dataset, limit)
    cache = RecordCache(paths["cache"])
    settings = {"grid": grid.tag(), **versions(), "codec_settings": {n: get_codec(n).settings for n in codecs}}
    jobs, keys, records = [], [], []
    for path in images:
        for name in codecs:
            for t in targets:
                key = {"image": path.name, "image_sha": file_digest(path), "codec": name, "target_bpp": t,
                       "settings": settings["codec_settings"][name], "grid": settings["grid"],
                       "versions": versions()}
                rec = cache.get(key) if resume else None
                if rec is not None:
                    records.append({k: v for k, v in rec.items() if k != "key"})
                else:
                    jobs.append((path, name, t, grid, save_recon))
                    keys.append(key)
    bar = tqdm(total=len(jobs), desc="bench-classical", unit="job", disable=not progress)
    if workers <= 1:
        results = map(_measure_job, jobs)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        results = pool.map(_measure_job, jobs)
    for key, rec in zip(keys, results, strict=True):
        cache.put(key, rec)
        records.append(rec)
        bar.update(1)
    bar.close()
    if workers > 1:
        pool.shutdown()

    bundle = summarize(records, codecs, targets, len(images), Path(dataset).name, grid)
    write_json(paths["json"], bundle)
    for c in bundle["curves"]:
        write_json(paths["json"].with_name(f"{paths['json'].stem}.{c['codec']}.json"), c)
    table = classical_table(bundle)
    from ..image import write_atomic

    write_atomic(paths["md"], lambda f: f.write(table.encode()))
    plot_rd(bundle["curves"], paths["png"], title=f"classical codecs, {Path(dataset).name}")
    if doc:
        update_section(doc, f"classical-{paths['json'].stem}", table,
                       title=f"Classical codecs: {paths['json'].stem}")
    return bundle
