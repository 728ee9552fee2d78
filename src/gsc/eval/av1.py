"""AV1 intra as a bare bitstream: libaom through libavif (``imagecodecs.avif_encode``), without the AVIF file.

The lite benchmark's reference coder for the thumbnail (``benchmarks/lite_reference.py``,
``docs/low-band.md``). A still AVIF from libavif is ISOBMFF boxes (``ftyp``, ``meta`` …) around one ``mdat``
whose payload is the AV1 bitstream, three OBUs::

    temporal delimiter (2 B) | sequence header (1 B OBU header, size, fields) | frame (1 B, size, payload)

The bare stream keeps the frame OBU's payload (frame header + the one tile's data) behind our own header::

    enable_restoration (1 bit) | width − 1 (15 bits) | height − 1 (u16) | frame OBU payload bytes (u16)
    | frame OBU payload                                           (big-endian; ``HEADER_BYTES`` = 6)

The receiver rebuilds the rest: the temporal delimiter is constant; the sequence header is fixed by the
encoder settings (``SEQUENCE``: libavif's reduced still-picture header, 8-bit 4:2:0, BT.601 full range),
except the frame size fields and the loop restoration flag (libaom turns it off at speed 6 and up), which
it writes from our header; the frame OBU's header and size come from
the payload's length. It then wraps them in a minimal AVIF and decodes with ``imagecodecs.avif_decode``.

Bounds, before anything reaches the decoder (``decode``): the stream is at least ``HEADER_BYTES`` long,
its length agrees with the payload size field, the thumbnail's sides are ≤ ``MAX_SIDE``; the sequence
header is ours, so the decoder never reads a sender's. ``obus`` bounds every OBU size by the bytes left.
"""

from __future__ import annotations

import struct
from typing import Callable

import numpy as np

from ..bits import BitReader, BitWriter, leb128
from ..errors import StreamError

OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER, OBU_FRAME = 1, 2, 6
TEMPORAL_DELIMITER = bytes([OBU_TEMPORAL_DELIMITER << 3 | 2, 0])
HEADER_BYTES = 6
MAX_SIDE = 4096               # thumbnail side the receiver accepts (the u16 fields could say 65536)
PIXEL_FORMAT = "420"

# The reduced still-picture sequence header (AV1 spec 5.5), field by field: (name, bits); None = the
# frame size fields' widths, read from the preceding *_bits_minus_1 fields.
SEQUENCE_SYNTAX = (
    ("seq_profile", 3), ("still_picture", 1), ("reduced_still_picture_header", 1), ("seq_level_idx", 5),
    ("frame_width_bits_minus_1", 4), ("frame_height_bits_minus_1", 4),
    ("max_frame_width_minus_1", None), ("max_frame_height_minus_1", None),
    ("use_128x128_superblock", 1), ("enable_filter_intra", 1), ("enable_intra_edge_filter", 1),
    ("enable_superres", 1), ("enable_cdef", 1), ("enable_restoration", 1),
    ("high_bitdepth", 1), ("mono_chrome", 1), ("color_description_present_flag", 1),
    ("color_primaries", 8), ("transfer_characteristics", 8), ("matrix_coefficients", 8),
    ("color_range", 1), ("chroma_sample_position", 2), ("separate_uv_delta_q", 1),
    ("film_grain_params_present", 1),
)
SIZE_FIELDS = ("frame_width_bits_minus_1", "frame_height_bits_minus_1", "max_frame_width_minus_1",
               "max_frame_height_minus_1")
# What libavif + libaom write for an 8-bit 4:2:0 still image (checked against every encode by ``encode``);
# the seq_level_idx is the smallest level whose picture size admits the frame (``level_for``).
SEQUENCE = {
    "seq_profile": 0, "still_picture": 1, "reduced_still_picture_header": 1,
    "use_128x128_superblock": 0, "enable_filter_intra": 1, "enable_intra_edge_filter": 1,
    "enable_superres": 0, "enable_cdef": 1,
    "high_bitdepth": 0, "mono_chrome": 0, "color_description_present_flag": 1,
    "color_primaries": 2, "transfer_characteristics": 2, "matrix_coefficients": 6,
    "color_range": 1, "chroma_sample_position": 0, "separate_uv_delta_q": 0, "film_grain_params_present": 0,
}
# AV1 levels 2.0, 2.1, 3.0, … (spec annex A): MaxPicSize and the largest side, with their seq_level_idx.
LEVELS = ((0, 147456, 2048, 1152), (1, 278784, 2816, 1584), (4, 665856, 4352, 2448),
          (5, 1065024, 5504, 3096), (8, 2359296, 6144, 3456))


def level_for(width: int, height: int) -> int:
    for idx, size, max_w, max_h in LEVELS:
        if width * height <= size and width <= max_w and height <= max_h:
            return idx
    return 31


def _leb128(r: BitReader) -> int:
    value = 0
    for i in range(8):
        byte = r.read(8)
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value
    raise StreamError("AV1: an OBU size longer than 8 bytes")


def obus(data: bytes) -> list[tuple[int, int, bytes]]:
    """A low-overhead bitstream → [(OBU type, header + size bytes, payload)]; every size is checked
    against the bytes left before it is used."""
    out, pos = [], 0
    while pos < len(data):
        r = BitReader(data[pos:], "AV1 OBU")
        if r.read(1):
            raise StreamError("AV1: forbidden bit set")
        kind, extension, has_size = r.read(4), r.read(1), r.read(1)
        r.read(1)
        if extension:
            r.read(8)
        if not has_size:
            raise StreamError("AV1: an OBU without a size field")
        size = _leb128(r)
        head = r.pos // 8
        if size > len(data) - pos - head:
            raise StreamError(f"AV1: an OBU of {size} bytes with {len(data) - pos - head} left")
        out.append((kind, head, data[pos + head: pos + head + size]))
        pos += head + size
    return out


def parse_sequence_header(payload: bytes) -> dict[str, int]:
    """A sequence header OBU's payload → its fields (``SEQUENCE_SYNTAX``); anything but the reduced
    still-picture 8-bit form with a colour description is refused."""
    r, fields = BitReader(payload, "AV1 sequence header"), {}
    for name, bits in SEQUENCE_SYNTAX:
        if bits is None:
            bits = fields[name.replace("max_frame_", "frame_").replace("_minus_1", "_bits_minus_1")] + 1
        fields[name] = r.read(bits)
        if name == "reduced_still_picture_header" and not fields[name]:
            raise StreamError("AV1: not a reduced still-picture sequence header")
        if name in ("high_bitdepth", "mono_chrome") and fields[name]:
            raise StreamError(f"AV1: {name} is not supported")
    return fields


def write_sequence_header(fields: dict[str, int]) -> bytes:
    """The inverse of ``parse_sequence_header``, with the trailing bits (a one, then zeros)."""
    w = BitWriter()
    for name, bits in SEQUENCE_SYNTAX:
        if bits is None:
            bits = fields[name.replace("max_frame_", "frame_").replace("_minus_1", "_bits_minus_1")] + 1
        w.write(fields[name], bits)
    w.write(1, 1)
    return w.to_bytes()


def sequence_header(width: int, height: int, restoration: int) -> dict[str, int]:
    """The fields the receiver assumes for a ``width`` × ``height`` frame (``SEQUENCE``)."""
    return {**SEQUENCE, "seq_level_idx": level_for(width, height), "enable_restoration": restoration,
            "frame_width_bits_minus_1": max(1, (width - 1).bit_length()) - 1,
            "frame_height_bits_minus_1": max(1, (height - 1).bit_length()) - 1,
            "max_frame_width_minus_1": width - 1, "max_frame_height_minus_1": height - 1}


def obu(kind: int, payload: bytes) -> bytes:
    return bytes([kind << 3 | 2]) + leb128(len(payload)) + payload


def _box(kind: bytes, payload: bytes, full: int | None = None) -> bytes:
    head = b"" if full is None else struct.pack(">I", full)
    return struct.pack(">I4s", 8 + len(head) + len(payload), kind) + head + payload


def container(width: int, height: int, fields: dict[str, int], bitstream: bytes) -> bytes:
    """A minimal still AVIF around ``bitstream`` (the OBUs): what libavif needs to decode it."""
    av1c = bytes([0x81, fields["seq_profile"] << 5 | fields["seq_level_idx"],
                  (1 << 3 | 1 << 2 | fields["chroma_sample_position"]), 0])   # 8-bit, subsampling 1, 1
    ipco = _box(b"ipco", _box(b"ispe", struct.pack(">II", width, height), 0)
                + _box(b"pixi", bytes([3, 8, 8, 8]), 0) + _box(b"av1C", av1c))
    ipma = _box(b"ipma", struct.pack(">IHB", 1, 1, 3) + bytes([0x01, 0x02, 0x83]), 0)
    infe = _box(b"infe", struct.pack(">HH4s", 1, 0, b"av01") + b"\0", 2 << 24)
    head = [_box(b"hdlr", bytes(4) + b"pict" + bytes(13), 0), _box(b"pitm", struct.pack(">H", 1), 0),
            None, _box(b"iinf", struct.pack(">H", 1) + infe, 0), _box(b"iprp", ipco + ipma)]
    ftyp = _box(b"ftyp", b"avif" + bytes(4) + b"avifmif1miaf")

    def iloc(offset: int) -> bytes:
        return _box(b"iloc", bytes([0x44, 0]) + struct.pack(">HHHHII", 1, 1, 0, 1, offset, len(bitstream)), 0)

    head[2] = iloc(0)
    offset = len(ftyp) + len(_box(b"meta", b"".join(head), 0)) + 8
    head[2] = iloc(offset)
    return ftyp + _box(b"meta", b"".join(head), 0) + _box(b"mdat", bitstream)


def boxes(data: bytes) -> dict[bytes, bytes]:
    """The top-level ISOBMFF boxes of a file → {type: payload} (sizes checked)."""
    out, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size < 8 or pos + size > len(data):
            raise StreamError(f"ISOBMFF: a {kind!r} box of {size} bytes at {pos} of {len(data)}")
        out[kind] = data[pos + 8:pos + size]
        pos += size
    return out


def split(avif: bytes) -> dict[str, bytes]:
    """libavif's file → its AV1 bitstream (the ``mdat`` payload), sequence header and frame OBU payloads."""
    bitstream = boxes(avif)[b"mdat"]
    found = {kind: payload for kind, _, payload in obus(bitstream)}
    if OBU_SEQUENCE_HEADER not in found or OBU_FRAME not in found:
        raise StreamError("AV1: no sequence header or no frame OBU")
    return {"bitstream": bitstream, "sequence": found[OBU_SEQUENCE_HEADER], "frame": found[OBU_FRAME]}


def framing(avif: bytes) -> dict[str, int]:
    """Bytes of each part of libavif's file: the container, the temporal delimiter, the sequence header
    OBU, the frame OBU's header and size, and its payload (of which the frame header, ``frame_header``)."""
    parts = split(avif)
    seq = len(obu(OBU_SEQUENCE_HEADER, parts["sequence"]))
    frame = len(parts["frame"])
    head = frame_header(parts["frame"], parse_sequence_header(parts["sequence"]))
    return {"frame_header": head["bytes"], "frame_header_bits": head["bits"], "base_q_idx": head["base_q_idx"],
            "file": len(avif), "container": len(avif) - len(parts["bitstream"]), "mdat": len(parts["bitstream"]),
            "temporal_delimiter": len(parts["bitstream"]) - seq - len(obu(OBU_FRAME, parts["frame"])),
            "sequence_header": seq, "frame_obu_header": len(obu(OBU_FRAME, parts["frame"])) - frame,
            "frame_payload": frame}


def avif_encoder(speed: int, threads: int = 1) -> Callable[[np.ndarray, int], bytes]:
    """(h, w, 3) uint8, quality 0..99 → libavif's AVIF file (libaom, 4:2:0, 8-bit)."""
    import imagecodecs

    def enc(rgb: np.ndarray, quality: int) -> bytes:
        return imagecodecs.avif_encode(np.ascontiguousarray(rgb), level=quality, speed=speed,
                                       pixelformat=PIXEL_FORMAT, bitspersample=8, codec=1, numthreads=threads)
    return enc


def bare(avif: bytes) -> bytes:
    """libavif's file → the bare stream (module docstring). Raises if its sequence header is not the one
    the receiver will rebuild, so a stream that decodes here decodes there."""
    parts = split(avif)
    fields = parse_sequence_header(parts["sequence"])
    width, height = fields["max_frame_width_minus_1"] + 1, fields["max_frame_height_minus_1"] + 1
    fixed = sequence_header(width, height, fields["enable_restoration"])
    if write_sequence_header(fixed) != parts["sequence"]:
        differ = {k: v for k, v in fields.items() if fixed[k] != v}
        raise StreamError(f"AV1: the encoder's sequence header differs from the fixed one in {differ}")
    if len(parts["frame"]) > 0xFFFF:
        raise StreamError("AV1: a frame of more than 65535 bytes")
    head = fields["enable_restoration"] << 15 | (width - 1)
    return struct.pack(">HHH", head, height - 1, len(parts["frame"])) + parts["frame"]


def rebuild(stream: bytes) -> tuple[dict[str, int], bytes]:
    """A bare stream → (its sequence header's fields, the AV1 bitstream), every bound checked first."""
    if len(stream) < HEADER_BYTES:
        raise StreamError(f"AV1 stream of {len(stream)} bytes: shorter than its {HEADER_BYTES}-byte header")
    head, h1, n = struct.unpack(">HHH", stream[:HEADER_BYTES])
    width, height = (head & 0x7FFF) + 1, h1 + 1
    if max(width, height) > MAX_SIDE:
        raise StreamError(f"AV1 thumbnail {width}×{height}: a side over {MAX_SIDE}")
    if n != len(stream) - HEADER_BYTES:
        raise StreamError(f"AV1 stream: the header says {n} payload bytes, {len(stream) - HEADER_BYTES} follow")
    fields = sequence_header(width, height, head >> 15)
    seq = obu(OBU_SEQUENCE_HEADER, write_sequence_header(fields))
    return fields, TEMPORAL_DELIMITER + seq + obu(OBU_FRAME, stream[HEADER_BYTES:])


def decode(stream: bytes, threads: int = 1) -> np.ndarray:
    """A bare stream → (h, w, 3) uint8 RGB (libavif's YUV → RGB, BT.601 full range)."""
    import imagecodecs

    fields, bitstream = rebuild(stream)
    width, height = fields["max_frame_width_minus_1"] + 1, fields["max_frame_height_minus_1"] + 1
    try:
        rgb = imagecodecs.avif_decode(container(width, height, fields, bitstream), numthreads=threads)
    except imagecodecs.AvifError as e:          # a malformed frame: the decoder's own one-line error
        raise StreamError("AV1: " + " ".join(str(e).split())) from None
    if rgb.shape[:2] != (height, width):
        raise StreamError(f"AV1: decoded {rgb.shape[1]}×{rgb.shape[0]}, the header says {width}×{height}")
    return np.ascontiguousarray(rgb[..., :3])


def codec(speed: int, threads: int = 1):
    """The bare stream behind the classical search's interface (``gsc.eval.classical``): quality 0..99,
    a file's bytes are the bare stream's (our header included)."""
    from .classical import ClassicalCodec

    enc = avif_encoder(speed, threads)
    return ClassicalCodec(f"av1-s{speed}", f"AV1 (speed {speed})", (0, 99), lambda a, q: bare(enc(a, q)),
                          lambda b: decode(b, threads),
                          settings=f"libaom via libavif, speed {speed}, 4:2:0 8-bit; bare frame OBU + "
                                   f"{HEADER_BYTES} B header")


# The uncompressed frame header of a reduced still picture (AV1 spec 5.9), read only to measure it: the
# fields libaom chooses per image (quantizer, filters, tiles) and how many bits they take.
SEGMENT_FEATURE_BITS = (8, 6, 6, 6, 6, 3, 0, 0)
SEGMENT_FEATURE_SIGNED = (1, 1, 1, 1, 1, 0, 0, 0)


def _tile_log2(block: int, target: int) -> int:
    k = 0
    while (block << k) < target:
        k += 1
    return k


def _tile_info(r: BitReader, seq: dict[str, int]) -> int:
    """Reads tile_info(); returns the number of tiles (uniform spacing only, which libaom writes)."""
    sb = 32 if seq["use_128x128_superblock"] else 16
    mi = [2 * ((seq[f"max_frame_{d}_minus_1"] + 8) >> 3) for d in ("width", "height")]
    cols, rows = [(m + sb - 1) // sb for m in mi]
    sb_log2 = (5 if sb == 32 else 4) + 2
    min_cols = _tile_log2(4096 >> sb_log2, cols)
    min_tiles = max(min_cols, _tile_log2((4096 * 2304) >> (2 * sb_log2), rows * cols))
    if not r.read(1):
        raise StreamError("AV1: non-uniform tile spacing is not measured")
    log2 = []
    for n, least in ((cols, min_cols), (rows, None)):
        k = least if least is not None else max(min_tiles - log2[0], 0)
        while k < _tile_log2(1, min(n, 64)) and r.read(1):
            k += 1
        log2.append(k)
    if sum(log2):
        r.read(sum(log2) + 2)            # context_update_tile_id, tile_size_bytes_minus_1
    return 1 << sum(log2)


def _quantization(r: BitReader, seq: dict[str, int]) -> tuple[int, bool]:
    """quantization_params(): (base_q_idx, whether any delta is non-zero)."""
    base = r.read(8)
    deltas = []
    for _ in range(3 + 2 * (seq["separate_uv_delta_q"] and r.read(1))):
        deltas.append(r.read(7) if r.read(1) else 0)
    if r.read(1):                        # using_qmatrix
        r.read(12 if seq["separate_uv_delta_q"] else 8)
    return base, any(deltas)


def _segmentation(r: BitReader) -> None:
    if r.read(1):
        for _ in range(8):
            for bits, signed in zip(SEGMENT_FEATURE_BITS, SEGMENT_FEATURE_SIGNED):
                if r.read(1):
                    r.read(bits + signed)


def _filters(r: BitReader, seq: dict[str, int], lossless: bool) -> None:
    """loop_filter_params(), cdef_params(), lr_params() (no intra block copy: screen content is off)."""
    if lossless:
        return
    levels = r.read(6), r.read(6)
    if any(levels):
        r.read(12)
    r.read(3)                            # sharpness
    if r.read(1) and r.read(1):          # loop_filter_delta_enabled, _update
        for _ in range(10):
            if r.read(1):
                r.read(7)
    if seq["enable_cdef"]:
        r.read(2)
        r.read(12 << r.read(2))
    if seq["enable_restoration"]:
        types = [r.read(2) for _ in range(3)]
        if any(types) and r.read(1) and not seq["use_128x128_superblock"]:
            r.read(1)
        if any(types[1:]):
            r.read(1)


def frame_header(frame: bytes, seq: dict[str, int]) -> dict[str, int]:
    """A frame OBU's payload → its uncompressed header's size in bits (and bytes, with the alignment and
    the tile group's start flag), base_q_idx and tiles."""
    r = BitReader(frame, "AV1 frame header")
    r.read(1)                            # disable_cdf_update
    screen = r.read(1)                   # allow_screen_content_tools (the reduced header selects per frame)
    if screen:
        raise StreamError("AV1: screen content tools are not measured")
    if seq["enable_superres"]:
        r.read(1)
    if r.read(1):                        # render_and_frame_size_different
        r.read(32)
    tiles = _tile_info(r, seq)
    base, deltas = _quantization(r, seq)
    _segmentation(r)
    if base > 0 and r.read(1):           # delta_q_present → delta_q_res, delta_lf_present
        r.read(2)
        if r.read(1):
            r.read(3)
    _filters(r, seq, base == 0 and not deltas)
    if base or deltas:
        r.read(1)                        # tx_mode_select
    r.read(1)                            # reduced_tx_set
    bits = r.pos
    if tiles > 1:
        r.read(1)                        # tile_start_and_end_present_flag
    header_bytes = r.align()             # the alignment bits are zero: a check on the parse
    return {"bits": bits, "bytes": header_bytes, "base_q_idx": base, "tiles": tiles}


def dav1d_planes(stream: bytes, threads: int = 1) -> list[np.ndarray]:
    """A bare stream → its decoded [Y, U, V] planes (uint8) by dav1d through PyAV: a second, independent
    decoder, to check libaom's decode against (the ``eval`` extra installs PyAV)."""
    import av

    fields, bitstream = rebuild(stream)
    ctx = av.CodecContext.create("libdav1d", "r")
    ctx.thread_count = threads
    frames = list(ctx.decode(av.Packet(bitstream))) + list(ctx.decode(None))
    if len(frames) != 1 or frames[0].format.name != "yuv420p":
        raise StreamError(f"dav1d: {len(frames)} frames, not one 8-bit 4:2:0 picture")
    f = frames[0]
    sizes = [(f.height, f.width)] + [((f.height + 1) // 2, (f.width + 1) // 2)] * 2
    return [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:h, :w].copy() for p, (h, w) in zip(f.planes, sizes)]
