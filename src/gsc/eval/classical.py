"""Classical codecs at a byte budget: downscale, encode, decode, upscale (bicubic), measure.

At 0.01 bpp a 768×512 image has 491 bytes, which no classical codec reaches at full size. So for each
image, codec and target the search tries every downscaled size on a geometric grid (``steps_per_octave``
sizes per halving, from full size down to 1/``max_downscale``) and, per size, binary-searches the
highest quality whose file fits the budget (file size grows with quality). Each fitting file is
decoded, upscaled bicubically to full size and rounded to 8 bits: a candidate. The candidate best on the
selecting metric wins (``--select``: PSNR, exact over all candidates; ST-LPIPS, FLIP or any other metric
of ``gsc.eval.metrics`` by a coarse-to-fine walk over the sizes, see ``pick``). bpp is the whole file's
bits over the original's H·W. ``gsc.eval.codecs.ClassicalBench`` puts this search behind the benchmark's
codec interface; ``gsc.eval.bench`` runs it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from ..errors import GSCError
from ..registry import Registry


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
    """imagecodecs (WebP, JPEG XL, AVIF) comes with the eval extra, not the base install: one line if absent."""
    try:
        import imagecodecs
    except ImportError:
        raise GSCError("WebP, JPEG XL and AVIF need imagecodecs, from the eval extra: pip install -c "
                       "constraints.txt -e '.[eval]' (or scripts/install.sh --test), or --codecs jpeg") from None
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


def as_tensor(a: np.ndarray):
    """(H, W, 3) uint8 → (3, H, W) float in [0, 1], the metrics' input."""
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float64)).permute(2, 0, 1) / 255  # a copy: arrays may be read-only


@dataclass
class Candidate:
    """The highest quality that fits at one downscaled size: the file, its full-size decode, its scores."""

    size: tuple[int, int]
    quality: int
    data: bytes
    recon: np.ndarray  # full size, uint8
    psnr: float
    scores: dict = field(default_factory=dict)  # metric name → value, filled as the selection asks
    nbytes: int = -1                            # the file's size (kept when ``data`` is not)

    def __post_init__(self):
        if self.nbytes < 0:
            self.nbytes = len(self.data)


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


def candidates(codec: ClassicalCodec, image: np.ndarray, budget_bytes: int,
               grid: SearchGrid = SearchGrid()) -> list[Candidate]:
    """For every size of the grid that fits, its highest-quality file, decoded and upscaled; smallest first."""
    h, w = image.shape[:2]
    out: list[Candidate] = []
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
            # files only grow with the size: three sizes in a row that do not fit even at the lowest
            # quality end the search (also before anything fit: then nothing larger will)
            misses += 1
            if misses >= 3:
                break
            continue
        misses = 0
        q, data = found
        recon = resize(codec.decode(data), (w, h), "bicubic")
        out.append(Candidate(size, q, data, recon, psnr_u8(recon, image)))
    return out


# The coarse-to-fine walk over sizes for metrics that cost a network pass per candidate: every
# COARSE_STRIDE-th size first (16 sizes per octave: one octave), then halving strides around the best,
# then a hill climb to a local optimum. BSDS500 val check in docs/evaluation.md.
COARSE_STRIDE = 16


def _better(metric, a: tuple, b: tuple | None) -> bool:
    """(value, bytes) a beats b: a better value, or the same value in fewer bytes. None is worst."""
    if b is None or b[0] is None:
        return a[0] is not None
    if a[0] is None:
        return False
    if a[0] != b[0]:
        return a[0] > b[0] if metric.higher_is_better else a[0] < b[0]
    return a[1] < b[1]


def pick(cands: list[Candidate], metric_name: str, value, exhaustive: bool = False) -> int:
    """Index of the best candidate on a metric; ``value(i)`` scores candidate i (and is called sparingly).

    PSNR is known for every candidate, so its pick is exact. For other metrics the walk always scores
    the best-PSNR candidate too, so the pick is never worse than it on the metric.
    """
    from .metrics import METRICS

    metric = METRICS[metric_name]
    n = len(cands)
    scored: dict[int, tuple] = {}

    def v(i: int) -> None:
        if 0 <= i < n and i not in scored:
            scored[i] = (value(i), cands[i].nbytes)

    def best() -> int:
        b = None
        for i in sorted(scored):
            if b is None or _better(metric, scored[i], scored[b]):
                b = i
        return b

    if metric_name == "psnr" or exhaustive:
        for i in range(n):
            v(i)
        return best()
    start = max(range(n), key=lambda i: (cands[i].psnr, -cands[i].nbytes))
    for i in [*range(0, n, COARSE_STRIDE), n - 1, start]:
        v(i)
    b, stride = best(), COARSE_STRIDE
    while stride > 1:
        stride //= 2
        v(b - stride)
        v(b + stride)
        b = best()
    while True:  # hill climb: stop where both neighbours are scored and worse
        v(b - 1)
        v(b + 1)
        nb = best()
        if nb == b:
            return b
        b = nb


def search(codec: ClassicalCodec, image: np.ndarray, budget_bytes: int, grid: SearchGrid = SearchGrid(),
           select: str = "psnr", reference=None) -> Candidate | None:
    """The best (downscaled size, quality) on ``select`` whose file fits ``budget_bytes``; None if none fits.

    ``image`` is (H, W, 3) uint8. ``reference`` (a ``metrics.Reference`` of the image) is reused across
    calls when given. The returned candidate's ``scores`` hold the ``select`` values it was compared on.
    """
    from .metrics import Reference

    cands = candidates(codec, image, budget_bytes, grid)
    if not cands:
        return None
    ref = reference or Reference(as_tensor(image))

    def value(i):
        c = cands[i]
        if select == "psnr":
            return c.psnr
        if select not in c.scores:
            c.scores.update(ref.score(as_tensor(c.recon), [select]))
        return c.scores[select]

    return cands[pick(cands, select, value)]


class SearchState:
    """The candidates of one image, codec and budget, with every score computed so far.

    Stored in the run's cache as JSON (no file bytes: the encoders are deterministic, so a candidate is
    re-encoded from its size and quality when it is needed again, and checked against its byte count).
    """

    def __init__(self, codec: ClassicalCodec, image: np.ndarray, cands: list[Candidate]):
        self.codec, self.image, self.cands = codec, image, cands

    @classmethod
    def run(cls, codec, image, budget, grid) -> "SearchState":
        return cls(codec, image, candidates(codec, image, budget, grid))

    def to_json(self) -> list[dict]:
        return [{"width": c.size[0], "height": c.size[1], "quality": c.quality, "bytes": c.nbytes,
                 "psnr": c.psnr, "scores": c.scores} for c in self.cands]

    @classmethod
    def from_json(cls, codec, image, items: list[dict]) -> "SearchState":
        return cls(codec, image, [Candidate((d["width"], d["height"]), d["quality"], b"", None, d["psnr"],
                                            dict(d["scores"]), d["bytes"]) for d in items])

    def materialize(self, i: int) -> Candidate:
        c = self.cands[i]
        if c.recon is None:
            h, w = self.image.shape[:2]
            data = self.codec.encode(resize(self.image, c.size, "lanczos"), c.quality)
            if len(data) != c.nbytes:
                raise GSCError(f"{self.codec.label} at {c.size} q{c.quality} gave {len(data)} bytes, the cache says "
                               f"{c.nbytes}: the encoder changed; rerun without --resume")
            c.data, c.recon = data, resize(self.codec.decode(data), (w, h), "bicubic")
        return c

    def score(self, i: int, names: list[str], reference) -> dict:
        c = self.cands[i]
        todo = [n for n in names if n not in c.scores and n != "psnr"]
        if todo:
            c.scores.update(reference.score(as_tensor(self.materialize(i).recon), todo))
        return {"psnr": c.psnr, **{n: c.scores[n] for n in names if n != "psnr"}}


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
        get_codec(n)  # one-line error naming the choices, or the package a codec needs, before any work
    if not names:
        raise GSCError("--codecs needs at least one codec")
    return list(dict.fromkeys(names))


def parse_selects(text: str) -> list[str]:
    """``psnr,st-lpips,flip`` → record names of metrics; any metric of ``metrics.METRICS`` may select."""
    from .metrics import get_metric

    names = [get_metric(v).name for v in text.split(",") if v.strip()]
    if not names:
        raise GSCError("--select needs at least one metric")
    return list(dict.fromkeys(names))


def curve_name(codec: ClassicalCodec, select: str) -> str:
    from .metrics import METRICS

    return codec.label if select == "psnr" else f"{codec.label}, best {METRICS[select].label}"
