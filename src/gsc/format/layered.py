"""Version 4 of the container: layers, each section with its own check, and a header that survives a damaged byte.

Full specification: ``docs/stream-format.md`` ("Version 4"). Layout, in code order::

    byte 0        magic (4 bits, 0xB) | version (4 bits, 4)
    fields        bit-packed, zero-padded to a byte boundary:
                  the image fields of v3 (``container.write_image_fields``) | caption_len EG6
                  [| caption CRC-8 (8) when caption_len > 0] | layers announced − 1 (4)
                  | layer 1's length EG7 [| layer 1's CRC-16 (16) when its length > 0]
    parity        2 Reed–Solomon bytes over GF(256) (``reedsolo``, nsym = 2) of byte 0 and the fields:
                  any one damaged byte among them is corrected
    caption       caption_len bytes (``gsc.format.caption``)
    layer 1       its bytes, of the preset's section kind (``gsc.format.sections``)
    layer 2, …    each a record: length (LEB128, 1–3 bytes) | CRC-16 (2, big-endian) | its bytes

A refinement part (``pack_more``) is only records, so ``SENT + MORE`` is one stream. Checks: the caption's
CRC-8 (polynomial 0x07) covers byte 0, the fields before it and the caption's bytes; layer 1's CRC-16/XMODEM covers its bytes with the CRC of byte 0 and
the fields as initial value; a record's CRC covers its length and bytes with the previous layer's CRC as
initial value, so a refinement made for another stream fails its check. A damaged layer is dropped with
every layer after it; a damaged caption is dropped alone; an unrepairable header refuses the stream.

The fields have no length of their own: the reader tries each possible length (1..``MAX_FIELDS`` bytes),
keeps those whose codeword checks (or, failing that, corrects) and whose fields end exactly there, and among
several prefers the one whose caption and layer 1 pass their checks; a tie refuses the stream.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field, replace

from ..bits import BitReader, BitWriter, leb128
from ..errors import StreamError
from . import container as v3
from .container import MAGIC, MAX_CAPTION_BYTES, MAX_STREAM_BYTES, Header

VERSION = 4
MAX_LAYERS = 16
MAX_FIELDS = 24          # bytes of bit-packed fields: the largest header (steps, a 2^32 seed, pads) is 15
PARITY = 2
_CRC8 = []
for _b in range(256):
    _c = _b
    for _ in range(8):
        _c = ((_c << 1) ^ 0x07) & 0xFF if _c & 0x80 else (_c << 1) & 0xFF
    _CRC8.append(_c)


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, init 0): the caption's check."""
    c = 0
    for b in data:
        c = _CRC8[c ^ b]
    return c


def crc16(data: bytes, init: int) -> int:
    return binascii.crc_hqx(data, init)


def _rs():
    import reedsolo

    return reedsolo.RSCodec(PARITY)


@dataclass(frozen=True)
class Report:
    """What a reader found: which sections passed their checks, where the stream ended, what was repaired."""

    size: int                            # bytes read, all parts together
    version: int
    declared: int                        # layers the first part's header announces
    layers: tuple = ()                   # (start, end, state) per layer seen: "ok", "damaged", "cut"
    caption: str = "ok"                  # "ok", "none", "damaged", "cut"
    header_fixed: int | None = None      # the byte of the header the parity code corrected
    notes: tuple = field(default=())

    @property
    def decoded(self) -> int:
        n = 0
        while n < len(self.layers) and self.layers[n][2] == "ok":
            n += 1
        return n

    @property
    def latent_bytes(self) -> int:
        """Bytes of the layers decoded, their records' lengths and checks included."""
        return sum(end - start for start, end, _ in self.layers[:self.decoded])

    @property
    def total(self) -> int:
        return max(self.declared, len(self.layers))

    @property
    def cut(self) -> bool:
        ended_inside = self.caption == "cut" or any(s == "cut" for *_, s in self.layers)
        return ended_inside or (self.decoded < self.declared and not self.damaged)

    @property
    def damaged(self) -> bool:
        return self.caption == "damaged" or any(s == "damaged" for *_, s in self.layers)

    @property
    def intact(self) -> bool:
        return not (self.cut or self.damaged)

    def keep(self, layers: int, caption: bool = True) -> "Report":
        """This report once the reader also refused what passed its check but would not parse: the layers
        from ``layers`` on (the first of them marked damaged), and the caption unless ``caption``."""
        states = list(self.layers[:layers + 1])
        if len(states) > layers and states[layers][2] == "ok":
            states[layers] = (*states[layers][:2], "damaged")
        cap = self.caption if caption or self.caption != "ok" else "damaged"
        return replace(self, layers=tuple(states), caption=cap)

    def line(self) -> str:
        """One line: what was decoded, and why not the rest."""
        n, total = self.decoded, self.total
        what = {0: f"no layer of {total} decoded", 1: f"layer 1 of {total} decoded"}.get(
            n, f"layers 1–{n} of {total} decoded")
        parts = [what]
        if self.caption in ("damaged", "cut"):
            parts.append(f"caption {self.caption}, decoded without it")
        for i, (start, end, state) in enumerate(self.layers, 1):
            if state == "damaged":
                parts.append(f"layer {i} (bytes {start}–{end}) failed its check: dropped with what follows")
            elif state == "cut":
                parts.append(f"stream ends at byte {self.size}, inside layer {i} (bytes {start}–{end})")
        if self.cut and not any(s == "cut" for *_, s in self.layers) and self.caption != "cut":
            parts.append(f"stream ends at byte {self.size}, after layer {n}")
        if self.header_fixed is not None:
            parts.append(f"header byte {self.header_fixed} repaired")
        return "; ".join(parts)


@dataclass(frozen=True)
class Parsed:
    """A stream as the codec uses it: the header, the caption's bytes (b"" when damaged) and the verified
    layers, in order, with the report and the CRC a refinement part continues from."""

    header: Header
    caption_data: bytes
    layers: list
    report: Report
    header_bytes: int
    last_crc: int = 0


# -- writing -------------------------------------------------------------------------------------

def pack_more(layers: list[bytes], init: int) -> bytes:
    """Records for ``layers``, continuing a stream whose last layer's CRC is ``init``."""
    out = bytearray()
    for data in layers:
        prefix = leb128(len(data))
        init = crc16(prefix + data, init)
        out += prefix + bytes([init >> 8, init & 0xFF]) + data
    return bytes(out)


def pack(header: Header, caption_data: bytes, layers: list[bytes], declared: int | None = None) -> bytes:
    """A version-4 stream: header, caption, ``layers`` (at least one; b"" for a caption-only stream).
    ``declared``: the layers the header announces, when this is the prefix of a longer stream (cuts are
    reported against it). Its field has a fixed width, so a prefix's size does not depend on it."""
    if not 1 <= len(layers) <= (declared or len(layers)) <= MAX_LAYERS:
        raise StreamError(f"a stream holds 1..{MAX_LAYERS} layers, got {len(layers)}")
    if len(caption_data) > MAX_CAPTION_BYTES:
        raise StreamError(f"caption section of {len(caption_data)} bytes exceeds {MAX_CAPTION_BYTES}")
    w = BitWriter()
    v3.write_image_fields(w, header)
    w.write_eg(len(caption_data), 6)
    head = bytes([(MAGIC << 4) | VERSION])
    if caption_data:
        w.write(crc8(head + w.to_bytes() + caption_data), 8)
    w.write((declared or len(layers)) - 1, 4)
    w.write_eg(len(layers[0]), 7)
    check = crc16(head + w.to_bytes(), 0)
    if layers[0]:
        check = crc16(layers[0], check)
        w.write(check, 16)
    head += w.to_bytes()
    out = bytes(_rs().encode(head)) + caption_data + layers[0] + pack_more(layers[1:], check)
    if len(out) > MAX_STREAM_BYTES:
        raise StreamError(f"stream of {len(out)} bytes exceeds the format's limit of {MAX_STREAM_BYTES}")
    return out


# -- reading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Fields:
    header: Header
    caption_len: int
    caption_crc: int
    caption_head: bytes  # byte 0 and the fields before the caption's CRC: checked with the caption
    declared: int
    first_len: int
    first_crc: int
    head_crc: int        # CRC of byte 0 and the fields up to layer 1's CRC: layer 1's initial value
    end: int             # offset of the caption


def _parse_fields(head: bytes, n: int) -> _Fields:
    """Fields of ``n`` bytes after byte 0; StreamError unless they end exactly at byte n (zero padding)."""
    r = BitReader(head[1:1 + n], "stream header")
    header = v3.read_image_fields(r)
    caption_len = r.read_eg(6, MAX_CAPTION_BYTES)
    caption_head = _fields_before(head, r.pos)
    caption_crc = r.read(8) if caption_len else 0
    declared = r.read(4) + 1
    first_len = r.read_eg(7, MAX_STREAM_BYTES)
    head_crc = crc16(_fields_before(head, r.pos), 0)
    first_crc = r.read(16) if first_len else 0
    if r.align() != n:
        raise StreamError("stream header: fields do not end where the parity says")
    return _Fields(header, caption_len, caption_crc, caption_head, declared, first_len, first_crc, head_crc,
                   1 + n + PARITY)


def _fields_before(head: bytes, bits: int) -> bytes:
    """Byte 0 and the first ``bits`` bits of the fields, zero-padded to a byte, as the writer checks them."""
    w = BitWriter()
    w.bits = [(head[1 + i // 8] >> (7 - i % 8)) & 1 for i in range(bits)]
    return head[:1] + w.to_bytes()


def _checks_passed(data: bytes, f: _Fields) -> int:
    """How many of the caption and layer 1 pass the checks these fields carry (ranks header candidates)."""
    cap = data[f.end:f.end + f.caption_len]
    ok = int(f.caption_len > 0 and len(cap) == f.caption_len and crc8(f.caption_head + cap) == f.caption_crc)
    start = f.end + f.caption_len
    layer = data[start:start + f.first_len]
    return ok + int(f.first_len > 0 and len(layer) == f.first_len and crc16(layer, f.head_crc) == f.first_crc)


def _candidates(data: bytes, correct: bool) -> list[tuple[_Fields, int | None]]:
    """Field parses for every possible field length whose codeword checks (or, with ``correct``, is within
    one byte of a codeword)."""
    import reedsolo

    rs, found = _rs(), []
    for n in range(1, min(MAX_FIELDS, len(data) - 1 - PARITY) + 1):
        word = bytearray(data[:1 + n + PARITY])
        fixed = None
        if correct:
            try:
                _, word, errata = rs.decode(word)
            except reedsolo.ReedSolomonError:
                continue
            fixed = errata[0] if len(errata) else None
        elif not rs.check(word)[0]:
            continue
        if word[0] != (MAGIC << 4) | VERSION:
            continue
        try:
            found.append((_parse_fields(bytes(word), n), fixed))
        except StreamError:
            continue
    return found


def _read_header(data: bytes) -> tuple[_Fields, int | None]:
    """The header's fields, and the byte the parity corrected (None). A corrected header must be confirmed
    by a section that passes its check: two damaged bytes can look like another header one byte away."""
    for correct in (False, True):
        found = _candidates(data, correct)
        if found:
            best = max(_checks_passed(data, f) for f, _ in found)
            top = {f: fixed for f, fixed in found if _checks_passed(data, f) == best}
            if len(top) > 1:
                raise StreamError("stream header is damaged beyond repair (its parity fits several headers)")
            f, fixed = next(iter(top.items()))
            if fixed is not None and best == 0 and (f.caption_len or f.first_len):
                raise StreamError("stream header is damaged beyond repair (no section confirms the repair)")
            return f, fixed
    raise StreamError("stream header is damaged beyond repair, or not a version-4 header")


def _read_varint(data: bytes, p: int) -> tuple[int | None, int]:
    """(value, next offset); value None when the stream ends inside it. StreamError past 3 bytes."""
    value = 0
    for k in range(3):
        if p + k >= len(data):
            return None, len(data)
        value |= (data[p + k] & 0x7F) << (7 * k)
        if not data[p + k] & 0x80:
            return value, p + k + 1
    raise StreamError("a layer's length is malformed")


def _records(data: bytes, p: int, init: int, room: int) -> tuple[list, list, int]:
    """Layers 2, … from offset ``p``: (verified bytes, (start, end, state) each, last verified CRC)."""
    layers, states = [], []
    while p < len(data) and len(states) < room:
        start = p
        try:
            length, q = _read_varint(data, p)
        except StreamError:
            states.append((start, len(data), "damaged"))
            break
        if length is None or q + 2 + length > len(data):
            states.append((start, len(data) if length is None else q + 2 + length, "cut"))
            break
        stored = data[q] << 8 | data[q + 1]
        if crc16(data[p:q] + data[q + 2:q + 2 + length], init) != stored:
            states.append((start, q + 2 + length, "damaged"))
            break
        layers.append(data[q + 2:q + 2 + length])
        states.append((start, q + 2 + length, "ok"))
        init, p = stored, q + 2 + length
    return layers, states, init


def _first_part(data: bytes, f: _Fields) -> tuple[str, bytes, tuple]:
    """(caption state, caption bytes, layer 1's (start, end, state)) of a parsed header."""
    cap_end = f.end + f.caption_len
    caption = data[f.end:cap_end]
    if cap_end > len(data):
        state = "cut"
    elif not f.caption_len:
        state = "none"
    else:
        state = "ok" if crc8(f.caption_head + caption) == f.caption_crc else "damaged"
    end = cap_end + f.first_len
    if end > len(data):
        return state, caption, (cap_end, end, "cut")
    ok = not f.first_len or crc16(data[cap_end:end], f.head_crc) == f.first_crc
    return state, caption, (cap_end, end, "ok" if ok else "damaged")


def unpack(data: bytes) -> Parsed:
    """Read a version-4 stream (parts already joined). StreamError only when the header cannot be read;
    damaged or missing sections are dropped and reported."""
    f, fixed = _read_header(data)
    caption_state, caption, first = _first_part(data, f)
    layers, states, last = [], [first], f.first_crc if f.first_len else f.head_crc
    if first[2] == "ok":
        layers.append(data[first[0]:first[1]])
        more, rest, last = _records(data, first[1], last, MAX_LAYERS - 1)
        layers += more
        states += rest
        if (rest[-1][1] if rest else first[1]) < len(data) and (not rest or rest[-1][2] == "ok"):
            states.append((rest[-1][1] if rest else first[1], len(data), "damaged"))  # over MAX_LAYERS
    if caption_state == "cut":
        states = []
    report = Report(len(data), VERSION, f.declared, tuple(states), caption_state, fixed)
    return Parsed(f.header, caption if caption_state == "ok" else b"", layers, report, f.end, last)


def _v3(data: bytes) -> Parsed:
    s = v3.unpack(data)
    report = Report(len(data), v3.VERSION, 1, ((len(data) - len(s.latent_data), len(data), "ok"),),
                    "ok" if s.caption_data else "none")
    return Parsed(s.header, s.caption_data, [s.latent_data], report, s.header_bytes)


def read(parts) -> Parsed:
    """Read a stream given as one or several parts (bytes each; a refinement part follows what it refines).
    Version 3 streams are read as one layer (any damage refuses them); StreamError on what cannot be read."""
    if isinstance(parts, (bytes, bytearray, memoryview)):
        parts = [parts]
    if not all(isinstance(p, (bytes, bytearray, memoryview)) for p in parts):
        raise StreamError("a stream is bytes")
    data = b"".join(bytes(p) for p in parts)
    if len(data) > MAX_STREAM_BYTES:
        raise StreamError(f"stream of {len(data)} bytes exceeds the format's limit of {MAX_STREAM_BYTES}")
    if len(data) < 4:
        raise StreamError("stream is truncated (shorter than the smallest header)")
    if data[0] == (MAGIC << 4) | v3.VERSION:
        try:
            return _v3(data)
        except StreamError as first_error:   # or a v4 stream whose byte 0 was damaged into 0xB3
            try:
                return unpack(data)
            except StreamError:
                raise first_error from None
    try:
        return unpack(data)
    except StreamError as e:
        if data[0] >> 4 != MAGIC:
            raise StreamError("not a gsc stream (bad magic), or its header is damaged beyond repair") from None
        if data[0] & 0xF not in (v3.VERSION, VERSION):
            raise StreamError(f"stream version {data[0] & 0xF} is not supported (this gsc reads versions "
                              f"{v3.VERSION} and {VERSION})") from None
        raise e
