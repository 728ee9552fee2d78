"""What ``gsc serve`` does with a request: the limits it checks at once, and the jobs its worker runs.

Two jobs, each a function ``(codec, params, progress) -> (result, files)`` in ``JOBS``:

- ``compare``: the upload through ``gsc.eval.compare.build_row`` (the code of ``gsc compare``): gsc at
  the budget, then WebP at ≤ gsc's bytes, its best downscale × quality on PSNR; each tile scored, colour
  drift added; the sheet drawn by ``compare.render``.
- ``decode``: an uploaded .gsc stream, read and decoded within the codec's own decode limits; its
  ``Codec.info`` fields, and one picture per layer decoded.

Every result lists ``layers``: the stream's decodable prefixes, each {bytes received, bpp, layers decoded,
picture}, the last one the whole stream. A version-4 stream of several layers has one prefix per layer
boundary (a prefix up to a boundary is a whole stream), and the page shows a "bytes received" slider.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import warnings
from pathlib import Path

from ..codec import CAPTION_POLICIES, Codec
from ..errors import GSCError
from ..registry import Registry

BPP_MIN, BPP_MAX, BPP_DEFAULT = 0.002, 0.05, Codec.DEFAULT_BPP
MAX_UPLOAD_BYTES = 32 * 2**20     # an image upload; a .gsc stream is bounded by the format's own limit
MAX_CAPTION_CHARS = 1000
CLASSICAL = ["webp"]              # the codec beside gsc, picked as `gsc compare` picks it
SELECT = "psnr"
JOBS: Registry = Registry("serve job")


def limits() -> dict:
    """What the page needs to know before it sends anything (its slider, its checks)."""
    from ..budget import DecodeLimits
    from ..format.container import MAX_STREAM_BYTES

    return {"bpp_min": BPP_MIN, "bpp_max": BPP_MAX, "bpp_default": BPP_DEFAULT, "max_upload_bytes": MAX_UPLOAD_BYTES,
            "max_stream_bytes": MAX_STREAM_BYTES, "max_pixels": DecodeLimits().max_pixels,
            "caption_policies": list(CAPTION_POLICIES), "max_caption_chars": MAX_CAPTION_CHARS}


def safe_name(name: str | None, default: str) -> str:
    """A file name to show and to save under: letters, digits, ``._-`` only, at most 80 characters."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or "").name)[-80:].lstrip(".")
    return name or default


def compare_params(query, name: str) -> dict:
    """The compare form's fields → the job's options, or a one-line GSCError naming the field."""
    try:
        bpp = float(query.get("bpp", BPP_DEFAULT))
    except ValueError:
        raise GSCError(f"budget must be a number of bits per pixel, got {query.get('bpp')!r}") from None
    if not BPP_MIN <= bpp <= BPP_MAX:
        raise GSCError(f"budget must be {BPP_MIN}–{BPP_MAX} bpp, got {bpp:g}")
    policy = query.get("caption_policy", "keep")
    if policy not in CAPTION_POLICIES:
        raise GSCError(f"caption policy must be one of {', '.join(CAPTION_POLICIES)}, got {policy!r}")
    caption = query.get("caption", "").strip()
    if len(caption) > MAX_CAPTION_CHARS:
        raise GSCError(f"the caption has {len(caption)} characters; at most {MAX_CAPTION_CHARS}")
    return {"bpp": bpp, "caption": caption or None, "caption_policy": policy, "name": name}


def probe_image(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the file's header, before any pixel is decoded; one-line GSCError otherwise."""
    from PIL import Image, UnidentifiedImageError

    max_pixels = limits()["max_pixels"]
    if not data:
        raise GSCError(f"{name} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise GSCError(f"{name} is not an image this server reads (PNG, JPEG, WebP, …)") from None
    if width * height > max_pixels:
        raise GSCError(f"{name} is {width}×{height} ({width * height / 1e6:.1f} Mpx); this server takes images "
                       f"of at most {max_pixels / 1e6:.1f} Mpx (the decoder's default budget)")
    return width, height


def _png(array) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _number(v: float | None) -> float | str | None:
    """JSON has no infinity: a perfect PSNR is shown as "inf"."""
    return "inf" if v is not None and math.isinf(v) else v


def _tile_json(t, drift: float | None, src: str | None) -> dict:
    return {"label": t.label, "bytes": t.nbytes, "bpp": t.bpp, "psnr": _number(t.psnr), "st_lpips": t.st_lpips,
            "colour_drift": drift, "note": t.note, "src": src}


@JOBS.register("compare")
def compare_job(codec: Codec, params: dict, progress) -> tuple[dict, dict]:
    """The upload beside WebP at ≤ gsc's bytes: the tiles, their scores, the files to download."""
    from ..eval.classical import as_tensor
    from ..eval.compare import build_row, render, title_for
    from ..eval.metrics import colour_drift

    name, stem = params["name"], Path(params["name"]).stem
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gsc-serve-") as folder:
        path = Path(folder) / name
        path.write_bytes(params["data"])
        progress("reading the image")
        try:
            width, height = probe_image(params["data"], name)
            encode = {"max_bpp": params["bpp"], "caption_policy": params["caption_policy"]}
            tiles = build_row(path, codec, encode, CLASSICAL, SELECT, caption=params["caption"],
                              budget_bytes=math.floor(params["bpp"] * width * height / 8),
                              echo=notes.append, progress=progress)
        except GSCError as e:
            raise GSCError(str(e).replace(f"{folder}/", "")) from None
    progress("scoring colour drift, drawing the sheet")
    original = as_tensor(tiles[0].image)
    kinds = ["original", "gsc", *CLASSICAL]
    files = {f"{stem}-{k}.png": (_png(t.image), "image/png") for k, t in zip(kinds, tiles) if t.image is not None}
    out = [_tile_json(t, None if k == "original" or t.image is None else colour_drift(as_tensor(t.image), original),
                      f"{stem}-{k}.png" if t.image is not None else None) for k, t in zip(kinds, tiles)]
    for k, t in zip(kinds[1:], tiles[1:]):
        if t.data is not None:
            files[f"{stem}.{t.suffix}"] = (t.data, "application/octet-stream")
    buf = io.BytesIO()
    render([tiles], title=title_for(path, tiles, SELECT)).save(buf, format="PNG", optimize=True)
    files[f"{stem}-sheet.png"] = (buf.getvalue(), "image/png")
    g = tiles[1]
    downloads = {"stream": f"{stem}.gsc", "decoded": f"{stem}-gsc.png", "sheet": f"{stem}-sheet.png"} if g.data \
        else {"sheet": f"{stem}-sheet.png"}
    return {"name": name, "width": width, "height": height, "bpp": params["bpp"],
            "budget_bytes": math.floor(params["bpp"] * width * height / 8), "tiles": out, "notes": notes,
            "info": _jsonable(g.extra) if g.data else None,
            "layers": [{"bytes": g.nbytes, "bpp": g.bpp, "decoded": len(g.extra["layers"]),
                        "src": f"{stem}-gsc.png"}] if g.data else [],
            "downloads": downloads}, files


@JOBS.register("decode")
def decode_job(codec: Codec, params: dict, progress) -> tuple[dict, dict]:
    """An uploaded .gsc stream: ``gsc info``'s fields and its pictures, within the decode limits: one per
    prefix that ends at a decoded layer's boundary, the whole stream last. A stream holds at most the
    format's ``MAX_LAYERS`` layers, so the job decodes at most that many pictures, each within the limits."""
    from ..image import to_uint8

    data, name = params["data"], params["name"]
    if not data:
        raise GSCError(f"{name} is empty")
    progress("reading the stream")
    info = codec.info(data)          # parses and entropy-decodes within the limits; never generates
    if info["decode_refused"]:
        raise GSCError(f"{name}: this receiver refuses the stream: {info['decode_refused']}")
    report = codec.read(data).report
    ends = [end for _, end, _ in report.layers[:max(0, report.decoded - 1)]] + [len(data)]
    stem, pixels = Path(name).stem, info["width"] * info["height"]
    layers, files = [], {}
    for k, end in enumerate(ends, 1):
        what = f"decoding picture {k} of {len(ends)} (the first {end} of {len(data)} B)"
        image = codec.decode(data[:end], progress=lambda i, what=what: progress(
            f"{what}, step {i + 1} of {info['steps']}"))
        src = f"{stem}.png" if end == len(data) else f"{stem}-{end}B.png"
        files[src] = (_png(to_uint8(image)), "image/png")
        layers.append({"bytes": end, "bpp": end * 8 / pixels, "decoded": min(k, report.decoded), "src": src})
    tile = {"label": f"gsc {info['preset']}", "bytes": len(data), "bpp": info["bpp"], "psnr": None,
            "st_lpips": None, "colour_drift": None, "note": "decoded from the uploaded stream", "src": f"{stem}.png"}
    return {"name": name, "width": info["width"], "height": info["height"], "tiles": [tile],
            "info": _jsonable(info), "layers": layers, "report": None if report.intact else report.line(),
            "downloads": {"decoded": f"{stem}.png"}}, files


def _jsonable(d: dict) -> dict:
    """``Codec.info`` as JSON: tuples become lists, floats stay, the rest as text."""
    def conv(v):
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)
    return {k: conv(v) for k, v in d.items()}


def run_job(codec: Codec):
    """The worker's ``run``: a job → its kind's function in ``JOBS``."""
    return lambda job, progress: JOBS.get(job.kind)(codec, job.params, progress)
