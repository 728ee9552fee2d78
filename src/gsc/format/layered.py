"""Version 4 of the container: layers, each section with its own check, and a header that survives a damaged byte.

Full specification: ``docs/stream-format.md`` ("Version 4"). Layout, in code order::

    byte 0        magic (4 bits, 0xB) | version (4 bits, 4)
    fields        bit-packed, zero-padded to a byte boundary:
                  the image fields of v3 (``container.write_image_fields``) | caption_len EG6
                  [| caption CRC-8 (8) when caption_len > 0] | layer 1's check (16)
    parity        2 Reed–Solomon bytes over GF(256) (``reedsolo``, nsym = 2) of byte 0 and the fields:
                  any one damaged byte among them is corrected
    caption       caption_len bytes (``gsc.format.caption``)
    layer 1       its bytes, of the preset's section kind (``gsc.format.sections``); no length: it runs to
                  the end of the stream, or to its parity, or to the first record
    its parity    only when more than one layer is announced: 2k Reed–Solomon bytes (nsym = 2) over layer
                  1's L bytes split into k = ceil(L / 253) interleaved codewords (byte i in codeword
                  i mod k); parity byte j of codeword c at j·k + c: one damaged byte per codeword is corrected
    layer 2, …    each a record: LEB128(length · 16 + layers announced after it) (1–4 bytes)
                  | prefix check (1) | CRC-16 (2, big-endian) | its bytes
    tiled image   above 1 Mpx (``gsc.format.tiles``, ``pack_tiles``): layer 1 is empty, and every layer is a
                  record per tile, layer-major: LEB128(length · 16 + layers − 1) | prefix check (1)
                  | CRC-16 (2, chained to the header and the tile's previous layer) | the tile's section

A refinement part (``pack_more``) is only records, so ``SENT + MORE`` is one stream. Checks: the caption's
CRC-8 (polynomial 0x07) covers byte 0, the fields before it and the caption's bytes; layer 1's check is the
CRC-16/XMODEM of its bytes with the CRC of byte 0 and the fields as initial value, stored XOR ``MORE`` when
the writer announces more layers; a record's prefix check is the CRC-8 of 0xB4 and its LEB128 bytes; its
CRC-16 covers its LEB128 bytes and its bytes with the previous layer's check as initial value, so a
refinement made for another stream fails its check. A damaged layer is dropped with every layer after it;
a damaged caption is dropped alone; an unrepairable header refuses the stream.

The fields have no length of their own: the reader tries each possible length (1..``MAX_FIELDS`` bytes),
keeps those whose codeword checks (or, failing that, corrects) and whose fields end exactly there, and among
several prefers the one whose caption and layers pass their checks; a tie refuses the stream. Layer 1 ends
at a place where its check passes plain and what follows is records whose prefix passes its check, or
nothing; or where it passes XOR ``MORE`` and its parity follows whole and checks. Among several, every byte
verified wins, then the most verified records. When its check passes nowhere, layer 1 and its parity may
end before a record whose CRC-16 passes (it chains from layer 1's stored check, which the header holds), at
the stream's end, or before a record the stream ends inside: at each of these (at most ``MAX_ENDS``) the
parity corrects layer 1, which is kept only when its check (XOR ``MORE``) then passes.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field, replace

from ..bits import BitReader, BitWriter, leb128
from ..errors import StreamError
from . import container as v3
from . import tiles
from .container import MAGIC, MAX_CAPTION_BYTES, MAX_STREAM_BYTES, Header

VERSION = 4
MAX_LAYERS = 16
MAX_FIELDS = 24          # bytes of bit-packed fields: the largest header (steps, a 2^32 seed, pads) is 15
PARITY = 2
# Layer 1's check is stored XOR MORE when the writer announces more layers. 0xF01F is the CRC polynomial's
# factor other than x + 1 (0x11021 = (x + 1)·0xF01F): no error of one or two bits has that syndrome, so both
# readings of the check still catch every such error (XOR 0xFFFF would pass some two-bit errors).
MORE = 0xF01F
MAX_ENDS = 8             # places where layer 1 can end (its check passes, a record can follow): more is hostile
WORD = 253               # layer 1's bytes per Reed–Solomon codeword (255 less its parity)
MAX_WORDS = 64           # a damaged layer 1 is repaired up to 64 codewords (16 192 bytes): bounds the work
MAX_PASSES = 128         # places where layer 1's check passes: 32 by chance in a 1 MiB stream, more is hostile
MAX_MARKS = 64           # record prefixes looked at for where a damaged layer 1 ends: bounds the CRC work
_BYTE = [bytes([b]) for b in range(256)]
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
    declared: int                        # layers announced: the most a verified layer (or a cut record) says
    layers: tuple = ()                   # (start, end, state) per layer seen: "ok", "damaged", "cut"
    caption: str = "ok"                  # "ok", "none", "damaged", "cut"
    header_fixed: int | None = None      # the byte of the header the parity code corrected
    layer_fixed: int = 0                 # bytes of layer 1 (with its parity) the parity code corrected
    notes: tuple = field(default=())
    at_least: bool = False               # ``declared`` is a lower bound: the last layer read announces more
    tiles: tuple = ()                    # a tiled stream's (start, end, state) per layer, per tile

    @property
    def decoded(self) -> int:
        n = 0
        while n < len(self.layers) and self.layers[n][2] == "ok":
            n += 1
        return n

    @property
    def shown(self) -> int:
        """The most layers any part of the picture is decoded from: ``decoded``, or a tiled stream's best tile."""
        return max((tiles.kept(s) for s in self.tiles), default=self.decoded)

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
        n = self.shown
        of = f" of {self.total}" if not self.at_least else f" of at least {self.total}" if self.total > 1 else ""
        what = {0: f"no layer{of} decoded", 1: f"layer 1{of} decoded"}.get(n, f"layers 1–{n}{of} decoded")
        parts = [what]
        if self.caption in ("damaged", "cut"):
            parts.append(f"caption {self.caption}, decoded without it")
        for i, (start, end, state) in enumerate(() if self.tiles else self.layers, 1):
            if state == "damaged":
                how = " (damaged, or the stream was cut inside it)" if i == 1 else ""
                parts.append(f"layer {i} (bytes {start}–{end}) failed its check{how}: dropped with what follows")
            elif state == "cut":
                parts.append(f"stream ends at byte {self.size}, inside layer {i} (bytes {start}–{end})")
        if self.cut and not any(s == "cut" for *_, s in self.layers) and self.caption != "cut":
            parts.append(f"stream ends at byte {self.size}, after layer {n}")
        parts += tiles.notes(self.tiles)
        if self.header_fixed is not None:
            parts.append(f"header byte {self.header_fixed} repaired")
        if self.layer_fixed:
            parts.append(f"layer 1: {self.layer_fixed} byte{'s' if self.layer_fixed > 1 else ''} repaired")
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
    tiles: tuple = ()     # a tiled stream's verified layers per tile (``gsc.format.tiles``); ``layers`` is empty


# -- writing -------------------------------------------------------------------------------------

def pack_more(layers: list[bytes], init: int, later: int = 0) -> bytes:
    """Records for ``layers``, continuing a stream whose last layer's check is ``init``; ``later``: the layers
    announced after these (when this part is the prefix of a longer one)."""
    if len(layers) + later > MAX_LAYERS - 1:
        raise StreamError(f"a stream holds 1..{MAX_LAYERS} layers, got {1 + len(layers) + later}")
    out = bytearray()
    for k, data in enumerate(layers):
        prefix = leb128(len(data) << 4 | (len(layers) - 1 - k + later))
        mark = _mark(prefix)
        init = crc16(prefix + data, init)
        out += prefix + bytes([mark, init >> 8, init & 0xFF]) + data
    return bytes(out)


def _mark(prefix: bytes) -> int:
    """A record's prefix check: CRC-8 of byte 0 (0xB4) and the prefix. Not chained, so that a refinement
    part made for another stream is still seen as records (and fails its CRC-16), not as garbage."""
    return crc8(bytes([(MAGIC << 4) | VERSION]) + prefix)


def words(n: int) -> int:
    """The Reed–Solomon codewords protecting a layer 1 of ``n`` bytes when more layers are announced."""
    return -(-n // WORD)


def protect(data: bytes) -> bytes:
    """Layer 1's parity: 2 bytes per codeword, codeword c holding bytes c, c + k, … of the k; parity byte j
    of codeword c at j·k + c, so that a burst of k bytes hits each codeword once."""
    k, rs = words(len(data)), _rs()
    out = bytearray(PARITY * k)
    for c in range(k):
        out[c::k] = rs.encode(data[c::k])[-PARITY:]
    return bytes(out)


def _codewords(data: bytes, k: int):
    """(c, codeword c) of ``data``: layer 1's bytes, then the parity of its ``k`` codewords."""
    n = len(data) - PARITY * k
    return ((c, data[c:n:k] + data[n + c::k]) for c in range(k))


def _clean(data: bytes, k: int, most: int) -> int:
    """How many codewords of ``data`` (layer 1, then its parity) check before the first that does not (``k``
    when all do), looking at ``most`` at most."""
    rs, n = _rs(), 0
    for _, word in _codewords(data, k):
        if n >= most or not rs.check(word)[0]:
            break
        n += 1
    return n


def _repair(data: bytes, k: int) -> tuple[bytes, int] | None:
    """Layer 1 from ``data`` (its bytes, then its ``k`` codewords' parity) with one damaged byte per codeword
    corrected: (its bytes, the bytes corrected), or None where a codeword is beyond repair."""
    import reedsolo

    n, rs = len(data) - PARITY * k, _rs()
    out, fixed = bytearray(data[:n]), 0
    for c, word in _codewords(data, k):
        if rs.check(word)[0]:
            continue
        try:
            message, _, errata = rs.decode(word)
        except reedsolo.ReedSolomonError:
            return None
        out[c:n:k] = message
        fixed += len(errata)
    return bytes(out), fixed


def pack(header: Header, caption_data: bytes, layers: list[bytes], declared: int | None = None) -> bytes:
    """A version-4 stream: header, caption, ``layers`` (at least one; b"" for a caption-only stream).
    ``declared``: the layers announced, when this is the prefix of a longer stream (cuts are reported
    against it). Announcing costs no byte but layer 1's parity, which follows it whenever more than one
    layer is announced, so a prefix's size does not depend on how many more."""
    declared = declared or len(layers)
    if not 1 <= len(layers) <= declared <= MAX_LAYERS:
        raise StreamError(f"a stream holds 1..{MAX_LAYERS} layers, got {len(layers)}")
    if len(caption_data) > MAX_CAPTION_BYTES:
        raise StreamError(f"caption section of {len(caption_data)} bytes exceeds {MAX_CAPTION_BYTES}")
    w = BitWriter()
    v3.write_image_fields(w, header)
    w.write_eg(len(caption_data), 6)
    head = bytes([(MAGIC << 4) | VERSION])
    if caption_data:
        w.write(crc8(head + w.to_bytes() + caption_data), 8)
    check = crc16(layers[0], crc16(head + w.to_bytes(), 0)) ^ (MORE if declared > 1 else 0)
    w.write(check, 16)
    head += w.to_bytes()
    parity = protect(layers[0]) if declared > 1 else b""
    out = (bytes(_rs().encode(head)) + caption_data + layers[0] + parity
           + pack_more(layers[1:], check, declared - len(layers)))
    if len(out) > MAX_STREAM_BYTES:
        raise StreamError(f"stream of {len(out)} bytes exceeds the format's limit of {MAX_STREAM_BYTES}")
    return out


def pack_tiles(header: Header, caption_data: bytes, sections: list[list[bytes]], declared: int | None = None) -> bytes:
    """A version-4 stream of a tiled image (``gsc.format.tiles``): header, caption, an empty layer 1, then
    ``sections[layer][tile]`` as records, layer-major. ``declared`` as in ``pack``."""
    n = len(tiles.grid(header.width, header.height))
    if any(len(layer) != n for layer in sections) or not sections:
        raise StreamError(f"a {header.width}×{header.height} image has {n} tiles: give a section for each")
    declared = declared or len(sections)
    if len(sections) > declared:
        raise StreamError(f"{len(sections)} layers given, {declared} announced")
    head = pack(header, caption_data, [b""], declared)
    f = next(f for f, _ in _candidates(head, False) if f.end + f.caption_len == len(head))
    out = head + tiles.records(sections, tiles.first_checks(f.first_crc, n), declared, _mark)
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
    head_crc: int        # CRC of byte 0 and the fields up to layer 1's check: layer 1's initial value
    first_crc: int       # layer 1's check as stored (XOR ``MORE`` when more layers are announced)
    end: int             # offset of the caption


def _parse_fields(head: bytes, n: int) -> _Fields:
    """Fields of ``n`` bytes after byte 0; StreamError unless they end exactly at byte n (zero padding)."""
    r = BitReader(head[1:1 + n], "stream header")
    header = v3.read_image_fields(r)
    caption_len = r.read_eg(6, MAX_CAPTION_BYTES)
    caption_head = _fields_before(head, r.pos)
    caption_crc = r.read(8) if caption_len else 0
    head_crc = crc16(_fields_before(head, r.pos), 0)
    first_crc = r.read(16)
    if r.align() != n:
        raise StreamError("stream header: fields do not end where the parity says")
    return _Fields(header, caption_len, caption_crc, caption_head, head_crc, first_crc, 1 + n + PARITY)


def _fields_before(head: bytes, bits: int) -> bytes:
    """Byte 0 and the first ``bits`` bits of the fields, zero-padded to a byte, as the writer checks them."""
    w = BitWriter()
    w.bits = [(head[1 + i // 8] >> (7 - i % 8)) & 1 for i in range(bits)]
    return head[:1] + w.to_bytes()


@dataclass(frozen=True)
class _Layout:
    """What follows a header: the caption's state, (start, end, state) per layer, the verified layers, the
    last verified check, the layers announced (a lower bound when ``at_least``), and ``whole``: every byte
    after the caption lies in a verified layer (a repaired header's strongest confirmation)."""

    caption: str
    states: tuple = ()
    layers: tuple = ()
    last: int = 0
    declared: int = 1
    at_least: bool = False
    whole: bool = False
    fixed: int = 0
    tiles: object = None    # ``tiles.TileRecords`` of a tiled stream

    @property
    def confirms(self) -> int:
        return int(self.caption == "ok") + int(self.whole)


def _first_ends(data: bytes, start: int, f: _Fields) -> list[tuple[int, int, bool]] | None:
    """(end of layer 1's bytes, end of its parity, more announced) wherever layer 1, begun at ``start``, can
    end: its check passes there plain and what follows can begin a record, or XOR ``MORE`` and its parity
    follows whole and checks, whatever follows (a damaged record after it costs layer 1 nothing). None past
    ``MAX_ENDS`` such places or ``MAX_PASSES`` passing checks: that is hostile. The codewords checked are
    bounded too: one layer 1's worth, and a few per passing check."""
    c, ends, passes = f.head_crc, [], 0
    budget = words(len(data) - start) + 4 * MAX_PASSES
    for p in range(start, len(data) + 1):
        if p > start:
            c = crc16(_BYTE[data[p - 1]], c)
        if c != f.first_crc and c ^ MORE != f.first_crc:
            continue
        passes += 1
        more, k = c != f.first_crc, words(p - start)
        end = p + PARITY * k if more else p
        checked = _clean(data[start:end], k, budget) if more and end <= len(data) else 0
        budget -= checked + 1
        if checked == k if more else _can_follow(data, end):
            ends.append((p, end, more))
        if len(ends) > MAX_ENDS or passes > MAX_PASSES:
            return None
    return ends


def _prefix(data: bytes, p: int) -> tuple[int | None, int] | None:
    """The record prefix at ``p`` that passes its check: (value, offset of its CRC-16); (None, end of the
    stream) when the stream ends before a whole prefix and its check; None when no record begins there."""
    try:
        value, q = _read_varint(data, p)
    except StreamError:
        return None
    if value is None or q >= len(data):
        return None, len(data)
    return (value, q + 1) if _mark(data[p:q]) == data[q] and (value & 15) <= MAX_LAYERS - 2 else None


def _can_follow(data: bytes, p: int) -> bool:
    """Whether layer 1 can end at ``p``: nothing follows, or a record's prefix that passes its check, or
    less than a whole prefix (a cut). Layer 1's own bytes fail this 255 times in 256."""
    return _prefix(data, p) is not None


def _repair_ends(data: bytes, start: int, f: _Fields) -> list[int]:
    """Where layer 1 and its parity, begun at ``start``, may end when its check passed nowhere: before a
    record whose CRC-16 passes (chained from layer 1's check as stored), at the stream's end, or before a
    record the stream ends inside (nearest the end first); at most ``MAX_ENDS``, in that order. Looks at
    ``MAX_MARKS`` record prefixes at most, within ``MAX_WORDS`` codewords of ``start``."""
    verified, cut, marks = [], [], 0
    for q in range(start + 1 + PARITY, min(len(data), start + (WORD + PARITY) * MAX_WORDS + 1)):
        found = _prefix(data, q)
        if found is None or found[0] is None:
            continue
        marks += 1
        if marks > MAX_MARKS:
            break
        value, r = found
        end = r + 2 + (value >> 4)
        if end > len(data):
            cut.append(q)
        elif crc16(data[q:r - 1] + data[r + 2:end], f.first_crc) == data[r] << 8 | data[r + 1]:
            verified.append(q)
    return (verified + [len(data)] + cut[::-1])[:MAX_ENDS]


def _repaired(data: bytes, start: int, end: int, f: _Fields) -> tuple[bytes, int] | None:
    """Layer 1 between ``start`` and ``end`` (its parity included) corrected by its parity, with the bytes
    corrected, when its check (XOR ``MORE``: only then is there parity) passes afterwards; else None."""
    k = -(-(end - start) // (WORD + PARITY))    # L + 2·ceil(L/253) bytes: ceil(·/255) gives k back
    if not 0 < k <= MAX_WORDS or words(end - start - PARITY * k) != k:
        return None
    got = _repair(data[start:end], k)
    if got is None or crc16(got[0], f.head_crc) ^ MORE != f.first_crc:
        return None
    return got


def _option(data: bytes, f: _Fields, caption: str, first: tuple, end: int, more: bool, fixed: int = 0):
    """(rank, layout) when layer 1 is ``first`` (start, its bytes) and it (parity included) ends at ``end``."""
    start, layer = first
    layers, states, last, announced = _records(data, end, f.first_crc)
    whole = all(s == "ok" for *_, s in states) and (states[-1][1] if states else end) == len(data)
    rank = (whole, sum(s == "ok" for *_, s in states))
    layout = _Layout(caption, ((start, end, "ok"), *states), (layer, *layers), last, max(1 + more, announced),
                     not announced and more, whole, fixed)
    return rank, layout


def _best(options: list) -> _Layout | None:
    """The layout whose rank is highest, or None when none is or several are."""
    best = max((rank for rank, _ in options), default=None)
    chosen = [layout for rank, layout in options if rank == best]
    return chosen[0] if len(chosen) == 1 else None


def _layout(data: bytes, f: _Fields) -> _Layout:
    """The caption and layers after header ``f``; layer 1 ends where its check and the records after it
    agree best (every byte verified, then the most verified records), or, where its check passes nowhere,
    where its parity repairs it; a tie leaves layer 1 unverified."""
    cap_end = f.end + f.caption_len
    if cap_end > len(data):
        return _Layout("cut", last=f.head_crc, at_least=True)
    caption = "none" if not f.caption_len else (
        "ok" if crc8(f.caption_head + data[f.end:cap_end]) == f.caption_crc else "damaged")
    if tiles.tiled(f.header.width, f.header.height):
        return _tiled_layout(data, f, caption, cap_end)
    ends = _first_ends(data, cap_end, f)
    chosen = _best([_option(data, f, caption, (cap_end, data[cap_end:p]), end, more) for p, end, more in ends or ()])
    if chosen is None and ends == []:
        repairs = [(end, _repaired(data, cap_end, end, f)) for end in _repair_ends(data, cap_end, f)]
        chosen = _best([_option(data, f, caption, (cap_end, got[0]), end, True, got[1])
                        for end, got in repairs if got is not None])
    return chosen or _Layout(caption, ((cap_end, len(data), "damaged"),), (), f.head_crc, at_least=True)


def _tiled_layout(data: bytes, f: _Fields, caption: str, cap_end: int) -> _Layout:
    """What follows the caption of a tiled image: its empty layer 1, then a record per tile per layer."""
    n = len(tiles.grid(f.header.width, f.header.height))
    found = tiles.read_records(data, cap_end, tiles.first_checks(f.first_crc, n), MAX_LAYERS, _mark)
    more = f.first_crc == f.head_crc ^ MORE
    declared = max(found.announced, 1 + more)
    return _Layout(caption, tiles.layer_states(found.states, declared), (), f.head_crc, declared,
                   not found.announced and more, found.whole, tiles=found)


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


def _read_header(data: bytes) -> tuple[_Fields, int | None, _Layout]:
    """The header's fields, the byte the parity corrected (None) and what follows. A corrected header must
    be confirmed by its caption's check or by layers that verify every byte after the caption: two damaged
    bytes can look like another header one byte away."""
    for correct in (False, True):
        found = [(f, fixed, _layout(data, f)) for f, fixed in _candidates(data, correct)]
        if found:
            best = max(layout.confirms for _, _, layout in found)
            top = {f: (fixed, layout) for f, fixed, layout in found if layout.confirms == best}
            if len(top) > 1:
                raise StreamError("stream header is damaged beyond repair (its parity fits several headers)")
            f, (fixed, layout) = next(iter(top.items()))
            if fixed is not None and best == 0:
                raise StreamError("stream header is damaged beyond repair (no section confirms the repair)")
            return f, fixed, layout
    raise StreamError("stream header is damaged beyond repair, or not a version-4 header")


def _read_varint(data: bytes, p: int) -> tuple[int | None, int]:
    """(value, next offset); value None when the stream ends inside it. StreamError past 4 bytes."""
    value = 0
    for k in range(4):
        if p + k >= len(data):
            return None, len(data)
        value |= (data[p + k] & 0x7F) << (7 * k)
        if not data[p + k] & 0x80:
            return value, p + k + 1
    raise StreamError("a layer's length is malformed")


def _records(data: bytes, p: int, init: int) -> tuple[list, list, int, int]:
    """Layers 2, … from offset ``p``: (verified bytes, (start, end, state) each, last verified check, the
    layers the last record read announces: 0 when none). Past ``MAX_LAYERS``: damaged."""
    layers, states, announced = [], [], 0
    while p < len(data):
        start, index = p, len(states) + 2
        try:
            value, q = _read_varint(data, p)
        except StreamError:
            value, q = -1, p
        if value is None or q >= len(data):
            states.append((start, len(data), "cut"))
            break
        if value < 0 or _mark(data[p:q]) != data[q] or index + (value & 15) > MAX_LAYERS:
            states.append((start, len(data), "damaged"))
            break
        announced, end = index + (value & 15), q + 3 + (value >> 4)
        if end > len(data):
            states.append((start, end, "cut"))
            break
        stored = data[q + 1] << 8 | data[q + 2]
        if crc16(data[p:q] + data[q + 3:end], init) != stored:
            states.append((start, end, "damaged"))
            break
        layers.append(data[q + 3:end])
        states.append((start, end, "ok"))
        init, p = stored, end
    return layers, states, init, announced


def unpack(data: bytes) -> Parsed:
    """Read a version-4 stream (parts already joined). StreamError only when the header cannot be read;
    damaged or missing sections are dropped and reported."""
    f, fixed, s = _read_header(data)
    found = s.tiles or _no_records(f.header)    # a cut caption leaves a tiled image's tiles with nothing
    report = Report(len(data), VERSION, s.declared, s.states, s.caption, fixed, s.fixed, at_least=s.at_least,
                    tiles=found.states)
    caption = data[f.end:f.end + f.caption_len] if s.caption == "ok" else b""
    return Parsed(f.header, caption, list(s.layers), report, f.end, s.last, found.verified)


def _no_records(header: Header) -> tiles.TileRecords:
    """The records read of an image none of whose records arrived: none per tile (no tiles: untiled)."""
    n = len(tiles.grid(header.width, header.height)) if tiles.tiled(header.width, header.height) else 0
    return tiles.TileRecords(((),) * n, ((),) * n, 0, False)


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
