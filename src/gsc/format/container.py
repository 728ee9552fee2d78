"""The .gsc container: a bit-packed header, then the caption section, then the latent section.

Full specification: ``docs/stream-format.md``. At 0.01 bpp a 768×512 image has 491 bytes in all, so
the container is bit-packed: 6 bytes for a Kodak image. Layout::

    byte 0      magic (4 bits, 0xB) | version (4 bits, 3)
    bytes 1–2   CRC-16/XMODEM of every other byte of the stream (big-endian)
    bits        preset id (3) | defaults flag (1) [| steps−1 EG0 | seed EG0 when the flag is 0]
                | orientation (1) | long side in 16-px blocks − 1 EG5 | short-side predictor residual
                  (zigzag EG2, predictor = round(2/3 · long)) | exact flag (1) [| pad_w (4) | pad_h (4)]
                | caption section length in bytes EG6 | zero bits to the byte boundary
    caption     ``caption_len`` bytes from the caption coder (0 bytes: no caption); ``gsc.format.caption``
    latent      the rest of the stream (0 bytes: C = 0), of the preset's section kind: ``gsc.format.grid``
                or ``gsc.format.bands`` (``gsc.format.sections`` names them)

Every size is checked against the limits below before anything is allocated.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from ..bits import BitReader, BitWriter, ceil_div, unzigzag, zigzag
from ..errors import StreamError

MAGIC = 0xB
VERSION = 3  # 3: wavefront-ordered latent coding, 3-bit step code (docs/stream-format.md, version history)
MAX_SIDE = 16384                # pixels, either side
MAX_PIXELS = 1 << 26            # 67 Mpx: e.g. 8192 × 8192
MAX_STEPS = 1000
MAX_SEED = (1 << 32) - 1
MAX_CAPTION_BYTES = 4096
MAX_STREAM_BYTES = 1 << 20      # a stream for this method is a few hundred bytes; refuse megabytes


@dataclass(frozen=True)
class Header:
    preset_id: int
    width: int
    height: int
    steps: int | None = None    # None: the preset's default
    seed: int | None = None     # None: the preset's default (always with steps)


@dataclass(frozen=True)
class Stream:
    header: Header
    caption_data: bytes
    latent_data: bytes
    header_bytes: int


def crc(data: bytes) -> int:
    """The stream's CRC-16/XMODEM (``binascii.crc_hqx``, init 0) over every byte but bytes 1–2, which hold it."""
    return binascii.crc_hqx(data[:1] + data[3:], 0)


def check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise StreamError(f"image size {width}×{height} exceeds the format's limit "
                          f"({MAX_SIDE} px a side, {MAX_PIXELS} pixels)")


def write_image_fields(w: BitWriter, header: Header) -> None:
    """The header's fields up to the caption length (preset, steps and seed, size), as v3 and v4 share them."""
    check_size(header.width, header.height)
    if not 0 <= header.preset_id < 8:
        raise StreamError(f"preset id {header.preset_id} does not fit the stream (0..7)")
    w.write(header.preset_id, 3)
    defaults = header.steps is None and header.seed is None
    w.write(int(defaults), 1)
    if not defaults:
        if header.steps is None or header.seed is None:
            raise ValueError("give both steps and seed, or neither")
        if not (1 <= header.steps <= MAX_STEPS and 0 <= header.seed <= MAX_SEED):
            raise StreamError(f"steps {header.steps} / seed {header.seed} out of range")
        w.write_eg(header.steps - 1, 0)
        w.write_eg(header.seed, 0)
    bw, bh = ceil_div(header.width, 16), ceil_div(header.height, 16)
    portrait = bh > bw
    long_b, short_b = (bh, bw) if portrait else (bw, bh)
    w.write(int(portrait), 1)
    w.write_eg(long_b - 1, 5)
    w.write_eg(zigzag(short_b - round(2 * long_b / 3)), 2)
    pad_w, pad_h = 16 * bw - header.width, 16 * bh - header.height
    w.write(int(pad_w == 0 and pad_h == 0), 1)
    if pad_w or pad_h:
        w.write(pad_w, 4)
        w.write(pad_h, 4)


def pack(header: Header, caption_data: bytes, latent_data: bytes) -> bytes:
    """A version-3 stream (still written for tests that pin v3 bytes; ``gsc.format.layered`` writes v4)."""
    if len(caption_data) > MAX_CAPTION_BYTES:
        raise StreamError(f"caption section of {len(caption_data)} bytes exceeds {MAX_CAPTION_BYTES}")
    w = BitWriter()
    write_image_fields(w, header)
    w.write_eg(len(caption_data), 6)
    fields = w.to_bytes()
    out = bytearray([(MAGIC << 4) | VERSION, 0, 0]) + fields + caption_data + latent_data
    if len(out) > MAX_STREAM_BYTES:
        raise StreamError(f"stream of {len(out)} bytes exceeds the format's limit of {MAX_STREAM_BYTES}")
    check = crc(bytes(out))
    out[1], out[2] = check >> 8, check & 0xFF
    return bytes(out)


def read_image_fields(r: BitReader) -> Header:
    """Inverse of ``write_image_fields``; StreamError on malformed or out-of-limit fields."""
    preset_id = r.read(3)
    steps = seed = None
    if not r.read(1):
        steps = r.read_eg(0, MAX_STEPS - 1) + 1
        seed = r.read_eg(0, MAX_SEED)
    portrait = r.read(1)
    long_b = r.read_eg(5, MAX_SIDE // 16) + 1
    short_b = round(2 * long_b / 3) + unzigzag(r.read_eg(2, 2 * MAX_SIDE // 16))
    if not 1 <= short_b <= long_b:
        raise StreamError(f"stream header: invalid image size ({long_b}, {short_b} blocks)")
    bw, bh = (short_b, long_b) if portrait else (long_b, short_b)
    pad_w = pad_h = 0
    if not r.read(1):
        pad_w, pad_h = r.read(4), r.read(4)
        if pad_w == 0 and pad_h == 0:
            raise StreamError("stream header: padding flag contradicts zero padding")
    width, height = 16 * bw - pad_w, 16 * bh - pad_h
    check_size(width, height)
    return Header(preset_id, width, height, steps, seed)


def unpack(data: bytes) -> Stream:
    """Parse and validate a stream; raises StreamError (and nothing else) on any malformed input."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise StreamError(f"a stream is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_STREAM_BYTES:
        raise StreamError(f"stream of {len(data)} bytes exceeds the format's limit of {MAX_STREAM_BYTES}")
    if len(data) < 4:
        raise StreamError("stream is truncated (shorter than the smallest header)")
    if data[0] >> 4 != MAGIC:
        raise StreamError("not a gsc stream (bad magic)")
    if data[0] & 0xF != VERSION:
        raise StreamError(f"stream version {data[0] & 0xF} is not supported (this gsc reads version {VERSION})")
    if (data[1] << 8 | data[2]) != crc(data):
        raise StreamError("stream is corrupted or truncated (checksum mismatch)")
    r = BitReader(data[3:], "stream header")
    header = read_image_fields(r)
    caption_len = r.read_eg(6, MAX_CAPTION_BYTES)
    start = 3 + r.align()
    if start + caption_len > len(data):
        raise StreamError(f"caption section claims {caption_len} bytes; only {len(data) - start} remain")
    caption = data[start:start + caption_len]
    latent = data[start + caption_len:]
    return Stream(header, caption, latent, header_bytes=start)
