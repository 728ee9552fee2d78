"""The benchmark's codec interface, and its codecs: classical (downscale × quality search) and gsc.

Every codec of ``gsc bench`` (``gsc.eval.bench``) is an object with

- ``name`` (unique in a run, e.g. ``webp``, ``webp:st-lpips-alex``, ``gsc:lite``), ``label`` (tables and
  plots), ``kind`` (``classical`` or ``gsc``);
- ``key() → dict``: everything that decides its output (settings, library versions, the *content* hash
  of the weights), part of every cached record's key;
- ``encode(picture, budget) → bytes``: the whole file for ``picture`` in at most ``budget`` bytes
  (``NoFit`` when nothing fits);
- ``decode(data, size) → (H, W, 3) uint8`` at the original ``size`` = (width, height);
- ``info(data) → dict``: what the record keeps about the file (JSON values; a codec's own fields).

``Picture`` is one image of the data set: its name, 8-bit pixels and caption (or None).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import GSCError
from . import classical
from .results import RecordCache


class NoFit(GSCError):
    """Nothing this codec can write fits the budget."""


@dataclass
class Picture:
    name: str
    pixels: np.ndarray          # (H, W, 3) uint8, C order
    caption: str | None = None
    sha: str = ""               # the file's content hash (the cache key's image part)

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]

    def tensor(self):
        return classical.as_tensor(self.pixels)


def load_picture(path: Path, caption: str | None = None) -> Picture:
    from ..image import load_image, to_uint8
    from .results import file_digest

    return Picture(path.name, np.ascontiguousarray(to_uint8(load_image(path))), caption, file_digest(path))


def jsonable(value):
    """Tuples → lists, dicts recursively; numpy scalars → Python; anything else not JSON → its str."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@lru_cache(maxsize=None)
def weights_digest(folder: str | None = None) -> str:
    """SHA-256 of the names and contents of the weight files: retrained weights make new records."""
    from ..models.zoo import weights_dir

    h = hashlib.sha256()
    for p in sorted(Path(folder or weights_dir()).glob("*")):
        if p.is_file():
            h.update(p.name.encode() + b"\0")
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


# the packages a stream's encode and decode do not run: changing them keeps the records
NOT_CODEC = ("eval", "train", "testing", "weights", "__pycache__")


@lru_cache(maxsize=None)
def code_digest() -> str:
    """The gsc package's ``source_digest``: a changed sender or receiver makes new records, as retrained
    weights do."""
    return source_digest(Path(__file__).resolve().parent.parent)


def source_digest(root: Path) -> str:
    """SHA-256 of the sources and tables under ``root`` that encode and decode run (all but eval, train,
    testing, the CLI and the weights)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.parts[0] not in NOT_CODEC and rel.name != "cli.py" and p.suffix != ".pyc":
            h.update(str(rel).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


# -- classical ---------------------------------------------------------------------------------------

@dataclass
class ClassicalBench:
    """A classical codec at a byte budget: the downscale × quality best on ``select`` (``classical.pick``)."""

    codec: str = "webp"
    select: str = "psnr"
    grid: classical.SearchGrid = field(default_factory=classical.SearchGrid)
    kind: str = "classical"
    cache: RecordCache | None = None     # set by the driver: search states (candidates and scores) live there
    known: dict = field(default_factory=dict)  # (image, budget bytes) → an earlier run's record: rebuilt, not searched
    _info: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        from .metrics import METRICS

        return self.codec if self.select == "psnr" else f"{self.codec}:{METRICS[self.select].key}"

    @property
    def select_key(self) -> str:
        from .metrics import METRICS

        return METRICS[self.select].key

    @property
    def label(self) -> str:
        return classical.curve_name(classical.get_codec(self.codec), self.select)

    def key(self) -> dict:
        c = classical.get_codec(self.codec)
        return {"codec": self.codec, "select": self.select, "settings": c.settings, "grid": self.grid.tag(),
                "versions": classical.versions()}

    def describe(self) -> str:
        from .metrics import METRICS

        c = classical.get_codec(self.codec)
        return (f"{c.label} ({c.settings}): per image the downscaled size ({self.grid.tag()}) × quality whose "
                f"file fits the budget with the best {METRICS[self.select].label}; bicubic upscale; "
                "bpp = file bits / original H·W")

    def _state(self, picture: Picture, budget: int) -> tuple[classical.SearchState, dict | None]:
        from .metrics import metric_versions

        codec = classical.get_codec(self.codec)
        key = {"image": picture.name, "image_sha": picture.sha or hashlib.sha256(picture.pixels).hexdigest()[:16],
               "kind": "search", "budget_bytes": budget, **self.key(), "metric_versions": metric_versions()}
        key.pop("select")
        known = self.cache.get(key) if self.cache is not None else None
        if known is not None:
            return classical.SearchState.from_json(codec, picture.pixels, known["candidates"]), key
        t0 = time.perf_counter()
        state = classical.SearchState.run(codec, picture.pixels, budget, self.grid)
        self._search_s = time.perf_counter() - t0
        return state, key

    def rebuild(self, picture: Picture, rec: dict) -> bytes | None:
        """The file an earlier record describes (size, quality), if this encoder still writes the same bytes."""
        size = (rec["scaled_width"], rec["scaled_height"])
        data = classical.get_codec(self.codec).encode(classical.resize(picture.pixels, size, "lanczos"), rec["quality"])
        if len(data) != rec["bytes"]:
            return None
        self._info[data] = {"scaled_width": size[0], "scaled_height": size[1], "quality": rec["quality"],
                            "source": "rebuilt from an earlier run's choice"}
        return data

    def encode(self, picture: Picture, budget: int) -> bytes:
        from .metrics import Reference

        rec = self.known.get((picture.name, budget))
        if rec is not None and not rec.get("fit"):
            raise NoFit(f"{self.label}: no size and quality fits {budget} bytes (an earlier run)")
        data = self.rebuild(picture, rec) if rec is not None else None
        if data is not None:
            return data
        self._search_s = 0.0
        state, key = self._state(picture, budget)
        if not state.cands:
            raise NoFit(f"{self.label}: no size and quality fits {budget} bytes")
        reference = Reference(picture.tensor())
        i = classical.pick(state.cands, self.select,
                           lambda j: state.score(j, [self.select], reference)[self.select])
        if self.cache is not None:
            self.cache.put(key, {"candidates": state.to_json()})
        c = state.materialize(i)
        self._info[c.data] = {"scaled_width": c.size[0], "scaled_height": c.size[1], "quality": c.quality,
                              "candidates": len(state.cands), "search_s": self._search_s,
                              "scored": sum(1 for x in state.cands if self.select == "psnr" or self.select in x.scores)}
        return c.data

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        return classical.resize(classical.get_codec(self.codec).decode(data), size, "bicubic")

    def info(self, data: bytes) -> dict:
        return self._info.pop(data, {})


def classical_codecs(names: list[str], selects: list[str], grid: classical.SearchGrid) -> list[ClassicalBench]:
    """One codec per name and selection metric, in that order (codec-major, as the tables list them)."""
    return [ClassicalBench(n, s, grid) for n in names for s in selects]


# -- gsc ---------------------------------------------------------------------------------------------

# info fields that are the stream's own description, not worth a record's space
SKIP_INFO = {"caption", "total_bytes", "bpp", "width", "height", "decode_refused", "cost_device"}


@dataclass
class GscBench:
    """A gsc preset (and channel selection) at a byte budget: ``Codec.encode(max_bpp=budget·8/(H·W))``
    (no budget: the encoder's own default).

    The receiver is a ``Codec`` that is not told the selection. ``channels`` fixes C (None: the encoder
    picks). ``captions`` overrides the pictures' own captions (e.g. another image's, for a caption check);
    ``caption_note`` names that override in the cache key and the label. ``step``, ``seed`` and ``steps``
    go to ``Codec.encode`` when set. ``codec`` replaces the preset's ``Codec`` as sender and receiver
    (a stand-in with the same ``encode``/``decode``/``info``, for tests).
    """

    preset: str = "lite"
    selection: str | None = None
    channels: int | None = None
    captioner: str | None = None
    captions: dict[str, str] | None = None
    caption_note: str = ""
    step: float | None = None
    seed: int | None = None
    steps: int | None = None
    caption_policy: str | None = None   # None: the preset's (lite drops captions: compare captions with "keep")
    codec: object = None
    kind: str = "gsc"

    def __post_init__(self):
        from ..presets import get_preset

        self.default_selection = get_preset(self.preset).selection
        self.selection = self.selection or self.default_selection

    @property
    def name(self) -> str:
        extra = "" if self.channels is None else f":c{self.channels}"
        return f"gsc:{self.preset}:{self.selection}{extra}" + (f":{self.caption_note}" if self.caption_note else "")

    @property
    def label(self) -> str:
        notes = [s for s in (None if self.selection == self.default_selection else self.selection,
                             None if self.channels is None else f"C = {self.channels}", self.caption_note or None) if s]
        return f"gsc {self.preset}" + (f" ({', '.join(notes)})" if notes else "")

    def describe(self) -> str:
        return (f"gsc preset {self.preset}, selection {self.selection}, encode(max_bpp=target)"
                f"{'' if self.channels is None else f', C = {self.channels}'}"
                f"{f', {self.caption_note}' if self.caption_note else ''}; bpp = stream bytes × 8 / H·W")

    def key(self) -> dict:
        from .results import digest

        # step, seed, steps and caption_policy only when set, so that records made before they were options
        # keep their keys
        return {"preset": self.preset, "selection": self.selection, "channels": self.channels,
                "captioner": self.captioner, "captions": digest(self.captions) if self.captions else None,
                "weights": weights_digest(), "code": code_digest(), **self.encode_options()}

    def encode_options(self) -> dict:
        return {k: v for k, v in (("step", self.step), ("seed", self.seed), ("steps", self.steps),
                                  ("caption_policy", self.caption_policy)) if v is not None}

    @property
    def sender(self):
        if not hasattr(self, "_sender"):
            own = self.codec is None
            self._sender = _gsc_codec(self.preset, self.captioner, self.selection) if own else self.codec
            self._receiver = _gsc_codec(self.preset, None, None) if own else self.codec
        return self._sender

    def encode(self, picture: Picture, budget: int | None) -> bytes:
        import torch

        w, h = picture.size
        caption = self.captions[picture.name] if self.captions is not None else picture.caption
        kwargs = {**({} if self.channels is None else {"channels": self.channels}), **self.encode_options(),
                  **({} if budget is None else {"max_bpp": budget * 8 / (w * h)})}
        x = torch.from_numpy(picture.pixels.copy()).permute(2, 0, 1).float() / 255
        try:
            return self.sender.encode(x, caption=caption, image_name=picture.name, **kwargs)
        except GSCError as e:  # header and caption alone can exceed a small image's budget
            raise NoFit(str(e)) from None

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        from ..image import to_uint8

        self.sender  # noqa: B018  (builds the receiver)
        recon = to_uint8(self._receiver.decode(data))
        if (recon.shape[1], recon.shape[0]) != tuple(size):
            raise GSCError(f"decoded size {recon.shape[1]}×{recon.shape[0]} differs from {size[0]}×{size[1]}")
        return recon

    def info(self, data: bytes) -> dict:
        """Whatever ``Codec.info`` reports (a step may be a number, a tuple or a dict), as JSON values."""
        self.sender  # noqa: B018
        return {k: jsonable(v) for k, v in self._receiver.info(data).items() if k not in SKIP_INFO}


@lru_cache(maxsize=None)
def _gsc_codec(preset: str, captioner: str | None, selection: str | None):
    """One ``Codec`` per setting in a process: the benches of a run share their models."""
    from ..codec import Codec

    return Codec(preset=preset, captioner=captioner, selection=selection)


def parse_codec_list(text: str, selects: list[str], grid: classical.SearchGrid, preset: str = "lite",
                     channels: int | None = None) -> list:
    """``webp,jxl,gsc,gsc:det-ssim`` → codecs; classical ones once per ``selects`` metric."""
    out = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        base, _, sel = item.partition(":")
        if base == "gsc":
            out.append(GscBench(preset, sel or None, channels))
            _check_selection(out[-1].selection, item)
        elif not sel:
            classical.CODECS.get(base)  # one-line error naming the choices
            out += classical_codecs([base], selects, grid)
        else:
            raise GSCError(f"--codecs: unknown codec {item!r}; choose from gsc[:SELECTION], "
                           f"{', '.join(classical.CODECS.names())}")
    if not out:
        raise GSCError("--codecs needs at least one codec")
    return list({c.name: c for c in out}.values())


def _check_selection(selection: str, item: str) -> None:
    from ..latent.selection import SELECTORS

    if selection not in SELECTORS:
        raise GSCError(f"unknown selection {selection!r} in {item!r}; choose from {', '.join(sorted(SELECTORS))}")


def budget_bytes(target_bpp: float, size: tuple[int, int]) -> int:
    return math.floor(target_bpp * size[0] * size[1] / 8)
