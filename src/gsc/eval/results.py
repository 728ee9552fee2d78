"""Results files: CompressAI's JSON schema, markdown tables, and the per-image record cache.

One curve is one JSON object, as CompressAI's ``compressai.utils.plot`` reads it::

    {"name": "WebP", "description": "...",
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...], "st-lpips-alex": [...], ...}}

with one list entry per operating point, each the mean over the images. Extra top-level keys (the
per-image records, the metrics that were unavailable) are ignored by CompressAI's tool. A run that
makes several curves (``gsc bench-classical`` with several codecs) writes a *bundle*,
``{"curves": [curve, ...], ...}``, and each curve also as its own file for CompressAI's tool.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from ..errors import GSCError
from ..image import write_atomic

# record name → JSON key; the same as gsc.eval.metrics.METRICS (a test checks), kept here without torch
METRIC_KEYS = {"bpp": "bpp", "psnr": "psnr-rgb", "ms_ssim": "ms-ssim-rgb", "psnr_chroma": "psnr-chroma",
               "colour_drift": "colour-drift",
               "st_lpips_alex": "st-lpips-alex", "st_lpips_vgg": "st-lpips-vgg", "flip": "flip", "haarpsi": "haarpsi",
               "ms_gmsd": "ms-gmsd", "ssimulacra2": "ssimulacra2", "lpips": "lpips", "dists": "dists", "fid": "fid", "kid": "kid"}


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _finite(x):
    """JSON has no inf/nan: write them as null (an identical image's PSNR is inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def write_json(path: str | Path, obj) -> None:
    text = json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


def curve(name: str, description: str, operating_points: list[dict], **extra) -> dict:
    """A CompressAI results object from per-operating-point dicts {"bpp": .., "psnr": .., ...}."""
    points = operating_points
    # bpp, PSNR and MS-SSIM always (empty lists when no point exists); the others where measured
    keys = [k for k in METRIC_KEYS if k in ("bpp", "psnr", "ms_ssim") or any(p.get(k) is not None for p in points)]
    results = {METRIC_KEYS[k]: [p.get(k) for p in points] for k in keys}
    return {"name": name, "description": description, "results": results, **extra}


def check_curve(obj, source: str = "results") -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("results"), dict):
        raise GSCError(f"{source} is not a CompressAI results object (needs 'name' and 'results')")
    res = obj["results"]
    if not isinstance(res.get("bpp"), list):
        raise GSCError(f"{source} has no 'bpp' list in 'results'")
    n = len(res["bpp"])
    for k, v in res.items():
        if not isinstance(v, list) or len(v) != n:
            raise GSCError(f"{source}: results[{k!r}] is not a list of {n} values")
    return obj


def load_curves(path: str | Path) -> list[dict]:
    """All curves in a results file: one CompressAI object, or a bundle of them."""
    path = Path(path)
    if not path.is_file():
        raise GSCError(f"no such results file: {path}")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GSCError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    if isinstance(obj, dict) and "curves" in obj:
        return [check_curve(c, f"{path} curve {i}") for i, c in enumerate(obj["curves"])]
    return [check_curve(obj, str(path))]


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            if v.is_integer():  # byte counts and the like
                return str(int(v))
            return f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def update_section(md_path: str | Path, section: str, body: str, title: str | None = None) -> None:
    """Replace (or append) the block between ``<!-- gsc:section -->`` markers in a markdown file."""
    md_path = Path(md_path)
    start, end = f"<!-- gsc:{section} -->", f"<!-- /gsc:{section} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = md_path.read_text() if md_path.exists() else "# Results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        heading = f"\n## {title}\n\n" if title else "\n"
        text = text.rstrip() + "\n" + heading + block + "\n"
    write_atomic(md_path, lambda f: f.write(text.encode()))


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class RecordCache:
    """One JSON record per key in a folder (plus optional bytes beside it); safe to resume from."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: dict, suffix: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(key.get("image", "record")))
        return self.folder / f"{Path(stem).stem}-{digest(key)}{suffix}"

    def get(self, key: dict) -> dict | None:
        p = self._path(key, ".json")
        if not p.is_file():
            return None
        try:
            rec = json.loads(p.read_text())
        except json.JSONDecodeError:  # a torn write from an old crash: recompute it
            return None
        return rec if rec.get("key") == key else None

    def put(self, key: dict, record: dict, data: bytes | None = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if data is not None:
            write_atomic(self._path(key, ".gsc"), lambda f: f.write(data))
        write_json(self._path(key, ".json"), {**record, "key": key})

    def stream(self, key: dict) -> bytes | None:
        p = self._path(key, ".gsc")
        return p.read_bytes() if p.is_file() else None


def output_paths(out: str | Path) -> dict[str, Path]:
    """Where a run writes, all next to ``out``: the JSON, its table, its plot and its cache."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise GSCError(f"output must be a .json file, got {out}")
    return {"json": out, "md": out.with_suffix(".md"), "png": out.with_suffix(".png"),
            "cache": out.with_suffix(".cache")}
