"""Tiles: an image above ``MAX_TILE_PIXELS`` is coded as independently decodable tiles (stream version 4).

Grid, from the image size alone (``grid``)::

    nominal   nx × ny boxes, the fewest whose exact share of the image is at most MAX_TILE_PIXELS
              (a tie: the squarest), inner borders rounded to multiples of UNIT px;
              one tile, and the stream of an untiled image, at or below MAX_TILE_PIXELS
    coded     each nominal box grown by OVERLAP px on its inner sides: the picture its sections code

Layout after the caption, where the header's layer 1 is empty (its check is that of no bytes)::

    record (layer 1, tile 1) … record (layer 1, tile T) | record (layer 2, tile 1) … : layer-major,
                              so a cut keeps layer 1 of every tile first
    record    LEB128(length · 16 + layers announced − 1) (1–4 bytes) | prefix check (1)
              | CRC-16 (2, big-endian) | the tile's section of the preset's kind, for its coded box

The prefix check is the container's (CRC-8 of byte 0 and the LEB128 bytes). The CRC-16 (XMODEM) covers
the LEB128 bytes and the section; its initial value chains it to the stream and to its place: for layer 1
the CRC of the tile's index (2 bytes, big-endian) from the header's layer-1 check, for a later layer the
same tile's previous record's stored check. So damage to one record drops that tile's layer (and its later
layers) alone. A record whose prefix fails its check has lost its length: the reader looks for the next
place where a record's prefix and CRC-16 both pass for one of the next T − 1 records (the next record of
the same tile cannot be checked: it chains to the lost one), within ``RESYNC_WINDOW`` bytes and at most
``RESYNC_WORK`` bytes of CRC per stream byte.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from ..bits import ceil_div, leb128
from ..errors import StreamError

MAX_TILE_PIXELS = 1 << 20    # a Kodak image (0.39 Mpx) and anything up to 1 Mpx is one tile
UNIT = 16                    # px: inner borders on a multiple of TAEF2's latent cell (8) and of 4:2:0 chroma
OVERLAP = 32                 # px each tile's coded box reaches past each inner border: the seams' blend band
MAX_TILES = 128              # bounds the grid of any image the format admits: 65 at most in a sweep of 67 Mpx sizes
RESYNC_WORK = 16             # bytes of CRC per stream byte the reader may spend finding lost records
RESYNC_WINDOW = 1 << 16      # bytes the reader looks ahead for the record after a lost length


@dataclass(frozen=True)
class Tile:
    """One tile: its index (0-based), its nominal box and its coded box, each (x0, y0, x1, y1) in pixels."""

    index: int
    box: tuple[int, int, int, int]
    coded: tuple[int, int, int, int]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the coded box: the image size its sections are coded for."""
        x0, y0, x1, y1 = self.coded
        return x1 - x0, y1 - y0


def tiled(width: int, height: int) -> bool:
    return width * height > MAX_TILE_PIXELS


def _counts(width: int, height: int) -> tuple[int, int]:
    """(nx, ny): the fewest tiles whose share of the image fits MAX_TILE_PIXELS; a tie, the squarest."""
    best = None
    for nx in range(1, ceil_div(width, UNIT) + 1):
        ny = ceil_div(height * width, nx * MAX_TILE_PIXELS)      # tile height ≤ MAX · nx / width
        while ceil_div(width, nx) * ceil_div(height, ny) > MAX_TILE_PIXELS:
            ny += 1
        shape = abs((width / nx) / (height / ny) - 1) if width * ny >= height * nx else abs(
            (height / ny) / (width / nx) - 1)
        key = (nx * ny, shape)
        if best is None or key < best[0]:
            best = (key, (nx, ny))
        if nx >= best[0][0]:      # more columns alone would make more tiles
            break
    return best[1]


def _borders(n: int, parts: int) -> list[int]:
    inner = [min(n, round(k * n / parts / UNIT) * UNIT) for k in range(1, parts)]
    return [0, *inner, n]


@lru_cache(maxsize=64)
def grid(width: int, height: int) -> tuple[Tile, ...]:
    """The tiles of a width × height image, row by row; one tile (the whole image) at or below
    MAX_TILE_PIXELS."""
    if not tiled(width, height):
        return (Tile(0, (0, 0, width, height), (0, 0, width, height)),)
    nx, ny = _counts(width, height)
    if nx * ny > MAX_TILES:
        raise StreamError(f"a {width}×{height} image would need {nx * ny} tiles, over {MAX_TILES}")
    xs, ys = _borders(width, nx), _borders(height, ny)
    out = []
    for j in range(ny):
        for i in range(nx):
            box = (xs[i], ys[j], xs[i + 1], ys[j + 1])
            coded = (max(0, box[0] - OVERLAP), max(0, box[1] - OVERLAP),
                     min(width, box[2] + OVERLAP), min(height, box[3] + OVERLAP))
            out.append(Tile(len(out), box, coded))
    return tuple(out)


def first_checks(layer_1_check: int, n_tiles: int) -> list[int]:
    """Each tile's layer-1 initial CRC, from the header's (stored) layer-1 check."""
    return [binascii.crc_hqx(t.to_bytes(2, "big"), layer_1_check) for t in range(n_tiles)]


# -- writing -------------------------------------------------------------------------------------

def records(sections: list[list[bytes]], inits: list[int], declared: int, mark: Callable[[bytes], int]) -> bytes:
    """The records of ``sections`` (sections[layer][tile], layers from the first), layer-major; ``inits``:
    each tile's layer-1 initial CRC (``first_checks``); ``declared``: the layers the whole stream holds."""
    checks, out = list(inits), bytearray()
    for layer in sections:
        for t, data in enumerate(layer):
            prefix = leb128(len(data) << 4 | (declared - 1))
            checks[t] = binascii.crc_hqx(prefix + data, checks[t])
            out += prefix + bytes([mark(prefix), checks[t] >> 8, checks[t] & 0xFF]) + data
    return bytes(out)


# -- reading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TileRecords:
    """What the records after a caption hold: per tile, (start, end, state) per layer seen ("ok",
    "damaged", "cut") and the bytes of its leading verified layers; the layers announced (0: no record
    verified) and ``whole``: every byte lies in a verified record."""

    states: tuple
    verified: tuple
    announced: int
    whole: bool


def _record(data: bytes, p: int, mark: Callable[[bytes], int]):
    """(announced − 1, offset of the CRC-16's first byte − 1, end) of the record at ``p``; "cut" when the
    stream ends inside its prefix; None when its prefix is malformed or fails its check."""
    value = 0
    for k in range(4):
        if p + k >= len(data):
            return "cut"
        value |= (data[p + k] & 0x7F) << (7 * k)
        if not data[p + k] & 0x80:
            q = p + k + 1
            if q >= len(data):
                return "cut"
            if mark(data[p:q]) != data[q]:
                return None
            return value & 15, q, q + 3 + (value >> 4)
    return None


class _Reader:
    """The records of T tiles, in order, with resynchronisation after a lost length."""

    def __init__(self, data: bytes, inits: list[int], max_layers: int, mark):
        self.data, self.mark, self.n = data, mark, len(inits)
        self.total = self.n * max_layers
        self.last = list(inits)                          # each tile's chain value: its last record's stored check
        self.states = [[] for _ in inits]
        self.verified = [[] for _ in inits]
        self.announced, self.work = 0, RESYNC_WORK * len(data)

    def check(self, p: int, k: int, rec) -> tuple[int, bool]:
        _, q, end = rec
        stored = self.data[q + 1] << 8 | self.data[q + 2]
        self.work -= end - p
        return stored, binascii.crc_hqx(self.data[p:q] + self.data[q + 3:end], self.last[k % self.n]) == stored

    def take(self, p: int, k: int, rec) -> int:
        """Record ``k`` (tile k mod T, layer k div T) at ``p``; its end."""
        t, layer = k % self.n, k // self.n
        stored, ok = self.check(p, k, rec)
        end = rec[2]
        self.last[t] = stored
        self.states[t].append((p, end, "ok" if ok else "damaged"))
        if ok:
            self.announced = max(self.announced, rec[0] + 1)
            if len(self.verified[t]) == layer:
                self.verified[t].append(self.data[rec[1] + 3:end])
        return end

    def resync(self, p: int, k: int) -> tuple[int, int] | None:
        """(offset, index) of the first record after ``p`` that verifies as one of records k + 1 … k + T − 1."""
        for s in range(p + 1, min(len(self.data), p + 1 + RESYNC_WINDOW)):
            rec = _record(self.data, s, self.mark)
            if not isinstance(rec, tuple) or rec[2] > len(self.data):
                continue
            for j in range(k + 1, min(k + self.n, self.total)):
                if self.work <= 0:
                    return None
                if self.check(s, j, rec)[1]:
                    return s, j
        return None

    def read(self, p: int) -> TileRecords:
        data, k, whole = self.data, 0, True
        while p < len(data) and k < self.total:
            rec = _record(data, p, self.mark)
            if rec == "cut" or (rec is not None and rec[2] > len(data)):
                self.states[k % self.n].append((p, len(data) if rec == "cut" else rec[2], "cut"))
                whole = False
                break
            if rec is None:
                found = self.resync(p, k)
                end = found[0] if found else len(data)
                for j in range(k, found[1] if found else k + 1):
                    self.states[j % self.n].append((p, end, "damaged"))
                whole = False
                if found is None:
                    break
                p, k = found
                continue
            p, k = self.take(p, k, rec), k + 1
            whole = whole and self.states[(k - 1) % self.n][-1][2] == "ok"
        return TileRecords(tuple(map(tuple, self.states)), tuple(map(tuple, self.verified)), self.announced,
                           whole and p == len(data))


def read_records(data: bytes, start: int, inits: list[int], max_layers: int,
                 mark: Callable[[bytes], int]) -> TileRecords:
    """The records of ``len(inits)`` tiles from offset ``start`` (at most ``max_layers`` layers each)."""
    return _Reader(data, inits, max_layers, mark).read(start)


def layer_states(states: tuple, declared: int) -> tuple:
    """(start, end, state) per layer over all tiles, from each tile's (``TileRecords.states``): "ok" where
    every tile holds it verified, "damaged" where a tile's record of it (or of an earlier layer) failed,
    else "cut"."""
    out = []
    for j in range(max(map(len, states), default=0)):
        spans = [s[j] for s in states if len(s) > j]
        bad = any(st == "damaged" for s in states for _, _, st in s[:j + 1])
        state = "ok" if all(kept(s) > j for s in states) else "damaged" if bad else "cut"
        out.append((min(a for a, _, _ in spans), max(b for _, b, _ in spans), state))
    return tuple(out[:max(declared, 1)])


def refuse(states: tuple, tile: int, layer: int) -> tuple:
    """``states`` once the reader also refused tile ``tile``'s layer ``layer`` (it passed its check but
    would not parse)."""
    s = list(states[tile])
    s[layer] = (*s[layer][:2], "damaged")
    return (*states[:tile], tuple(s), *states[tile + 1:])


def kept(states: tuple) -> int:
    """How many leading layers of a tile's (start, end, state) verified."""
    n = 0
    while n < len(states) and states[n][2] == "ok":
        n += 1
    return n


def notes(states: tuple) -> list[str]:
    """One note per tile that holds fewer layers than another, or whose next record failed its check:
    which layer it lacks, why, and what it shows instead."""
    counts = [kept(s) for s in states]
    out = []
    for t, s in enumerate(states):
        k = counts[t]
        damaged = k < len(s) and s[k][2] == "damaged"
        if k == max(counts) and not damaged:
            continue
        where = f" (bytes {s[k][0]}–{s[k][1]})" if k < len(s) else ""
        shown = ("shows layer 1" if k == 1 else f"shows layers 1–{k}") if k else "filled from its neighbours"
        out.append(f"tile {t + 1} of {len(states)}: layer {k + 1}{where} "
                   f"{'failed its check' if damaged else 'was cut'}, {shown}")
    return out
