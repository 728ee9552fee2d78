"""Caption coding: lossless text → bytes for the stream's caption section.

Three coders, measured by ``benchmarks/caption_bits.py`` (results in docs/caption-coding.md):

- ``brotli``: brotli, quality 11, text mode; UTF-8 in.
- ``zstd-dict``: zstd level 19 with a dictionary trained on a caption corpus that is not Kodak
  (``data/captions.zstd-dict``), magic-less frames without checksum, size or dictionary id.
- ``model``: the integer word model of :mod:`gsc.format.wordmodel` driving constriction's range
  coder. The coder's 32-bit words are written big-endian and the tail is trimmed to the shortest
  byte string that still decodes to the same caption (every candidate is checked by decoding it).

The stream stores no coder id: the stream format version pins ``DEFAULT_CAPTION_CODER`` and the
shipped model data, so neither may change without a version bump. ``decode_caption`` raises
``StreamError`` on malformed input and never returns more than ``MAX_CAPTION_CHARS`` characters.
Strings are UTF-8 with ``surrogatepass`` for the byte coders, so any ``str`` round-trips.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GSCError, StreamError
from ..registry import Registry

MAX_CAPTION_CHARS = 2048
MAX_CAPTION_UTF8 = 4 * MAX_CAPTION_CHARS
DATA = Path(__file__).resolve().parent / "data"


def _check(text: str) -> None:
    if not isinstance(text, str):
        raise GSCError(f"a caption must be a str, got {type(text).__name__}")
    if len(text) > MAX_CAPTION_CHARS:
        raise GSCError(f"caption has {len(text)} characters; the limit is {MAX_CAPTION_CHARS}")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _from_utf8(raw: bytes) -> str:
    if len(raw) > MAX_CAPTION_UTF8:
        raise StreamError(f"caption exceeds {MAX_CAPTION_UTF8} UTF-8 bytes")
    try:
        text = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise StreamError("caption is not valid UTF-8") from None
    if len(text) > MAX_CAPTION_CHARS:
        raise StreamError(f"caption exceeds {MAX_CAPTION_CHARS} characters")
    return text


# --- brotli ------------------------------------------------------------------------------------------

def brotli_encode(text: str) -> bytes:
    import brotli

    _check(text)
    return brotli.compress(_utf8(text), mode=brotli.MODE_TEXT, quality=11) if text else b""


def brotli_decode(data: bytes) -> str:
    import brotli

    if not data:
        return ""
    try:
        d = brotli.Decompressor()
        try:
            raw = d.process(bytes(data), output_buffer_limit=MAX_CAPTION_UTF8 + 1)
        except TypeError:     # brotli < 1.2 cannot cap its output; the size check below still holds
            raw = d.process(bytes(data))
        if len(raw) > MAX_CAPTION_UTF8:
            raise StreamError(f"caption exceeds {MAX_CAPTION_UTF8} UTF-8 bytes")
        if not d.is_finished():
            raise StreamError("brotli caption is truncated")
    except brotli.error as e:
        raise StreamError(f"brotli caption is malformed ({e})") from None
    return _from_utf8(raw)


# --- zstd with a caption dictionary ------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _zstd_dict():
    import zstandard

    path = DATA / "captions.zstd-dict"
    if not path.exists():
        raise GSCError(f"zstd caption dictionary missing at {path}; run scripts/build_caption_model.py")
    return zstandard.ZstdCompressionDict(path.read_bytes())


def zstd_encode(text: str) -> bytes:
    import zstandard

    _check(text)
    if not text:
        return b""
    params = zstandard.ZstdCompressionParameters.from_level(
        19, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=False, write_checksum=False,
        write_dict_id=False)
    return zstandard.ZstdCompressor(dict_data=_zstd_dict(), compression_params=params).compress(_utf8(text))


def zstd_decode(data: bytes) -> str:
    import zstandard

    if not data:
        return ""
    try:
        dctx = zstandard.ZstdDecompressor(dict_data=_zstd_dict(), format=zstandard.FORMAT_ZSTD1_MAGICLESS)
        with dctx.stream_reader(io.BytesIO(bytes(data)), read_across_frames=False) as reader:
            raw = reader.read(MAX_CAPTION_UTF8 + 1)
    except zstandard.ZstdError as e:
        raise StreamError(f"zstd caption is malformed ({e})") from None
    return _from_utf8(raw)


# --- the word model + range coder --------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _word_model():
    from .wordmodel import DEFAULT_MODEL, WordModel

    if not DEFAULT_MODEL.exists():
        raise GSCError(f"caption model missing at {DEFAULT_MODEL}; run scripts/build_caption_model.py")
    return WordModel.load(DEFAULT_MODEL)


def model_encode(text: str) -> bytes:
    from .wordmodel import RangeWriter, walk

    _check(text)
    if not text:
        return b""
    model = _word_model()
    writer = RangeWriter(model)
    walk(writer, model, text, MAX_CAPTION_CHARS)
    full = writer.words().astype(">u4").tobytes()
    return _shortest(full, text)


def _shortest(full: bytes, text: str) -> bytes:
    """The shortest prefix of ``full`` (possibly with its last byte incremented) that decodes to text.

    A range coder's output names a point inside a final interval; any shorter byte string whose value
    (zero-extended, as the decoder reads it) stays inside decodes the same. Truncation only moves the
    value down, so the valid prefixes of each kind form a run ending at ``full``: scan back until one
    fails."""
    def ok(candidate: bytes) -> bool:
        try:
            return model_decode(candidate) == text
        except StreamError:
            return False

    best = full.rstrip(b"\x00")
    for bump in (0, 1):
        for k in range(len(full), 0, -1):
            value = int.from_bytes(full[:k], "big") + bump
            if value >> (8 * k):
                break
            candidate = value.to_bytes(k, "big").rstrip(b"\x00")
            if not candidate or not ok(candidate):
                break
            if len(candidate) < len(best):
                best = candidate
    if not ok(best):
        raise RuntimeError("caption model coder failed to round-trip; please report this caption")
    return best


def model_decode(data: bytes) -> str:
    from .wordmodel import RangeReader, walk

    if not data:
        return ""
    if len(data) > 4 * MAX_CAPTION_UTF8:
        raise StreamError(f"caption section of {len(data)} bytes is too long")
    data = bytes(data) + b"\x00" * (-len(data) % 4)
    words = np.frombuffer(data, dtype=">u4").astype(np.uint32)
    model = _word_model()
    try:
        return walk(RangeReader(words, model), model, None, MAX_CAPTION_CHARS)
    except StreamError:
        raise
    except Exception as e:  # constriction rejects some garbage with its own errors
        raise StreamError(f"caption section is malformed ({type(e).__name__}: {e})") from None


CAPTION_CODERS: Registry[tuple[Callable[[str], bytes], Callable[[bytes], str]]] = Registry("caption coder")
CAPTION_CODERS.register("brotli", (brotli_encode, brotli_decode))
CAPTION_CODERS.register("zstd-dict", (zstd_encode, zstd_decode))
CAPTION_CODERS.register("model", (model_encode, model_decode))
DEFAULT_CAPTION_CODER = "model"


def encode_caption(text: str) -> bytes:
    """The caption section for ``text`` (b"" for ""). GSCError if longer than MAX_CAPTION_CHARS or if
    it codes to more bytes than the stream's caption section may hold."""
    from ..format.container import MAX_CAPTION_BYTES

    data = CAPTION_CODERS[DEFAULT_CAPTION_CODER][0](text)
    if len(data) > MAX_CAPTION_BYTES:
        raise GSCError(f"caption codes to {len(data)} bytes; a stream holds at most {MAX_CAPTION_BYTES}")
    return data


def decode_caption(data: bytes) -> str:
    """Inverse of ``encode_caption``; StreamError on malformed data."""
    return CAPTION_CODERS[DEFAULT_CAPTION_CODER][1](data)
