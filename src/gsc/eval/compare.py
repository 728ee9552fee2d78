"""``gsc compare``: one picture of an image, its gsc reconstruction, and classical codecs at ≤ the same bytes.

Steps:

1. check the inputs: a gsc budget (``--channels`` and/or ``--max-bpp``), codecs, the selection metric,
   the crop;
2. encode with gsc, passing ``Codec.encode`` only the options the user gave (a preset whose encoder picks
   C under ``max_bpp`` gets just the budget), and decode as ``gsc decode`` would (8-bit);
3. per classical codec: the downscale × quality search of ``bench-classical`` at ≤ the gsc stream's bytes,
   the setting best on ``--select``;
4. score every tile against the original: PSNR and ST-LPIPS (alex);
5. draw the sheet (PIL): a row of tiles, each with its caption (codec, bytes, bpp, PSNR, ST-LPIPS), and
   with ``--crop`` a row of 1:1 details; write it atomically.

Tiles are pasted pixel for pixel (at full size unless ``tile_width`` shrinks them), so the sheet shows
exactly what each decoder gives. ``render`` returns where each tile went.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GSCError

MARGIN, GAP, LINE, FONT_SIZE = 10, 8, 16, 13
SUFFIX = {"webp": "webp", "jxl": "jxl", "avif": "avif", "jpeg": "jpg"}


@dataclass
class Tile:
    label: str                      # first caption line: what made it
    image: np.ndarray | None        # (H, W, 3) uint8 at the original's size; None: nothing fits
    nbytes: int | None = None       # the file's size
    bpp: float | None = None
    psnr: float | None = None
    st_lpips: float | None = None
    data: bytes | None = None       # the file itself (for --keep)
    suffix: str = ""
    note: str = ""                  # shown instead of the numbers (original; "no file fits")
    box: tuple[int, int, int, int] | None = None       # where render put it: x, y, w, h
    crop_box: tuple[int, int, int, int] | None = None
    extra: dict = field(default_factory=dict)

    def caption(self) -> list[str]:
        if self.nbytes is None:
            return [self.label, self.note, ""]
        psnr = "inf" if self.psnr is None or math.isinf(self.psnr) else f"{self.psnr:.2f} dB"
        st = "n/a" if self.st_lpips is None else f"{self.st_lpips:.3f}"
        return [self.label, f"{self.nbytes} B, {self.bpp:.4f} bpp", f"PSNR {psnr}, ST-LPIPS {st}"]


def check_options(channels, max_bpp, output: Path, tile_width, codecs: str, select: str) -> tuple[list[str], list[str]]:
    """``gsc compare``'s options → (classical codec names, [the selecting metric]), or a one-line error."""
    from .classical import parse_codecs, parse_selects
    from .metrics import get_metric

    if channels is None and max_bpp is None:
        raise GSCError("give --channels C or --max-bpp B (or both): the gsc stream sets the byte budget")
    if output.suffix.lower() != ".png":
        raise GSCError(f"the sheet is a PNG: -o must end in .png, got {output}")
    if tile_width is not None and tile_width < 16:
        raise GSCError(f"--tile-width must be ≥ 16, got {tile_width}")
    names = parse_codecs(codecs)
    chosen = parse_selects(select)
    if len(chosen) != 1:
        raise GSCError(f"--select takes one metric here, got {select!r}")
    get_metric(chosen[0]).check()
    return names, chosen


def parse_crop(text: str | None, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``X,Y,W,H`` in the original's pixels → a box inside the image, or a one-line error."""
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise GSCError(f"--crop must be X,Y,W,H (integers, pixels), got {text!r}") from None
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise GSCError(f"--crop {text} is not inside the {width}×{height} image")
    return x, y, w, h


def _u8(t) -> np.ndarray:
    from ..image import to_uint8

    return to_uint8(t)


def _scores(tile: Tile, original, width: int, height: int, st_lpips_ok: bool) -> None:
    from .classical import as_tensor
    from .metrics import psnr, st_lpips

    recon = as_tensor(tile.image)
    tile.bpp = tile.nbytes * 8 / (width * height)
    tile.psnr = psnr(recon, original)
    tile.st_lpips = st_lpips(recon, original) if st_lpips_ok else None


def step_text(step) -> str:
    """A stream's step as ``Codec.info`` reports it: a number, a tuple (luma, chroma) or a dict."""
    if isinstance(step, dict):
        return ", ".join(f"{k} {step_text(v)}" for k, v in step.items())
    if isinstance(step, (list, tuple)):
        return "/".join(step_text(v) for v in step)
    return "–" if step is None else f"{step:.3g}"


def gsc_tile(codec, x, encode: dict, image_name: str, caption: str | None = None, progress=None) -> Tile:
    """Encode with exactly the options in ``encode`` (those the user gave), decode to 8 bits.

    ``progress(text)``, if given, hears each step (encoding, then each decoder sampling step)."""
    say = progress or (lambda text: None)
    say("gsc: encoding")
    data = codec.encode(x, caption=caption, image_name=image_name, **encode)
    info = codec.info(data)
    say("gsc: decoding")
    recon = _u8(codec.decode(data, progress=lambda i: say(f"gsc: decoding, step {i + 1} of {info['steps']}")))
    label = f"gsc {info['preset']}, C={info['channels']}, step {step_text(info['step'])}"
    return Tile(label, recon, len(data), data=data, suffix="gsc", extra=info)


def classical_tile(name: str, picture, budget: int, select: str, grid) -> Tile:
    """The benchmark's classical codec (``codecs.ClassicalBench``) at ≤ ``budget`` bytes, best on ``select``."""
    from .codecs import ClassicalBench, NoFit

    codec = ClassicalBench(name, select, grid)
    try:
        data = codec.encode(picture, budget)
    except NoFit:
        return Tile(codec.label.split(",")[0], None, note=f"no file <= {budget} B")
    info = codec.info(data)
    return Tile(f"{codec.label.split(',')[0]} {info['scaled_width']}x{info['scaled_height']} q{info['quality']}",
                codec.decode(data, picture.size), len(data), data=data, suffix=SUFFIX.get(name, name))


def build_row(path: Path, codec, encode: dict, codecs: list[str], select: str = "psnr", grid=None,
              caption: str | None = None, budget_bytes: int | None = None, echo=print,
              progress=None) -> list[Tile]:
    """The tiles of one image: original, gsc, then each classical codec at ≤ gsc's bytes.

    If gsc cannot meet ``encode`` (its GSCError), the gsc tile says so and the classical codecs get
    ``budget_bytes`` instead (the caller's budget); without one the error propagates. ``progress(text)``
    hears each step (``gsc serve`` shows it).
    """
    from ..image import load_image
    from .classical import SearchGrid, as_tensor
    from .codecs import Picture
    from .metrics import available

    grid = grid or SearchGrid()
    x = load_image(path)
    original = as_tensor(_u8(x))
    image = _u8(x)
    height, width = image.shape[:2]
    st_ok = not available(["st_lpips_alex"])[1]
    try:
        g = gsc_tile(codec, x, encode, path.name, caption, progress)
        budget = g.nbytes
        _scores(g, original, width, height, st_ok)
    except GSCError as e:
        if budget_bytes is None:
            raise
        g = Tile(f"gsc {codec.preset.name}", None, note="no stream fits")
        echo(f"{path.name}: gsc: {e}")
        budget = budget_bytes
    tiles = [Tile("original", image, note=f"{width}x{height}"), g]
    picture = Picture(path.name, np.ascontiguousarray(image))
    for name in codecs:
        if progress:
            progress(f"{name}: downscale × quality search at <= {budget} B")
        t = classical_tile(name, picture, budget, select, grid)
        if t.image is not None:
            _scores(t, original, width, height, st_ok)
        tiles.append(t)
    return tiles


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1 with FreeType: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def render(rows: list[list[Tile]], crop: tuple[int, int, int, int] | None = None, tile_width: int | None = None,
           title: str | None = None):
    """The sheet as a PIL image; sets each tile's ``box`` (and ``crop_box``) in sheet pixels.

    One row per list of tiles, each tile with 3 caption lines below it; with ``crop``, a row of 1:1 details
    of that box follows each row of tiles (and the original's tile shows the box in red).
    """
    from PIL import Image, ImageDraw

    font = _font(FONT_SIZE)
    first = next(t.image for t in rows[0] if t.image is not None)
    height, width = first.shape[:2]
    tw = min(tile_width or width, width)
    th = round(height * tw / width)
    cw, ch = (crop[2], crop[3]) if crop else (0, 0)
    col = max(tw, cw)
    ncols = max(len(r) for r in rows)
    caption_h = 3 * LINE + 4
    row_h = th + caption_h + (GAP + ch if crop else 0)
    top = MARGIN + (LINE + 6 if title else 0)
    sheet = Image.new("RGB", (2 * MARGIN + ncols * col + (ncols - 1) * GAP,
                              top + len(rows) * row_h + (len(rows) - 1) * GAP + MARGIN - 4), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((MARGIN, MARGIN), title, fill="black", font=font)
    for r, tiles in enumerate(rows):
        y = top + r * (row_h + GAP)
        for c, t in enumerate(tiles):
            x = MARGIN + c * (col + GAP)
            if t.image is None:
                draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=(200, 200, 200))
            else:
                img = Image.fromarray(t.image)
                if tw != width:
                    img = img.resize((tw, th), Image.LANCZOS)
                sheet.paste(img, (x, y))
                t.box = (x, y, tw, th)
            for k, line in enumerate(t.caption()):
                draw.text((x, y + th + 2 + k * LINE), line, fill="black", font=font)
            if crop and t.image is not None:
                cx, cy, w, h = crop
                yy = y + th + caption_h + GAP
                sheet.paste(Image.fromarray(np.ascontiguousarray(t.image[cy:cy + h, cx:cx + w])), (x, yy))
                t.crop_box = (x, yy, w, h)
        if crop and tiles[0].box is not None:  # mark the detail on the original's tile
            x0, y0 = tiles[0].box[:2]
            s = tw / width
            cx, cy, w, h = crop
            draw.rectangle([x0 + cx * s, y0 + cy * s, x0 + (cx + w) * s - 1, y0 + (cy + h) * s - 1],
                           outline=(255, 0, 0), width=2)
    return sheet


def title_for(path: Path, tiles: list[Tile], select: str) -> str:
    from .metrics import METRICS

    g = tiles[1]
    what = f"{g.nbytes} B ({g.bpp:.4f} bpp)" if g.nbytes is not None else "no stream"
    return (f"{path.name}: gsc {what}; classical codecs at <= the same bytes, downscale x quality with the "
            f"best {METRICS[select].label}, bicubic upscale")


def write_sheet(sheet, out: Path) -> None:
    from ..image import write_atomic

    write_atomic(out, lambda f: sheet.save(f, format="PNG", optimize=True))


def keep_files(tiles: list[Tile], stem: str, folder: Path) -> None:
    """Each tile's file (the .gsc stream, the classical files) under ``folder``, to check or reuse."""
    from ..image import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    for t in tiles:
        if t.data is not None:
            write_atomic(folder / f"{stem}.{t.suffix}", lambda f, d=t.data: f.write(d))


def summary(tiles: list[Tile]) -> list[dict]:
    """Per tile: what it is, its numbers, its file's name under --keep, and where it sits on the sheet."""
    return [{"tile": t.label, "bytes": t.nbytes, "bpp": t.bpp, "psnr": t.psnr, "st_lpips_alex": t.st_lpips,
             "file_suffix": t.suffix or None, "box": t.box, "crop_box": t.crop_box} for t in tiles]
