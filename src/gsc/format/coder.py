"""The range coder both latent sections share: constriction's queue coder over integer frequency rows.

Convention: a section's model loop codes through one ``code(probs, symbols)`` that takes a (n, K) array of
frequency rows (float64 holding integers) and the n symbols (None when decoding) and returns the n symbols
as int64. Encoder, decoder and the sender's pricing hand the same loop different ``code`` callables, so
their models cannot drift apart.

Words. The coder's 32-bit words are stored little-endian with the trailing zero bytes dropped; the reader
reads missing trailing words as zeros.

Canonical payloads. ``checked_decode`` re-encodes what it decodes and requires the payload to be exactly
the encoder's output, so appended or altered trailing bytes are refused rather than ignored.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import BudgetError, StreamError

Code = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def pack_words(words: np.ndarray) -> bytes:
    """The coder's words as a section stores them: little-endian u32, trailing zero bytes dropped."""
    return np.asarray(words).astype("<u4").tobytes().rstrip(b"\x00")


def unpack_words(payload: bytes) -> np.ndarray:
    """Inverse of ``pack_words``: the dropped trailing bytes come back as zeros."""
    return np.frombuffer(payload + b"\x00" * (-len(payload) % 4), dtype="<u4").astype(np.uint32)


def _categorical():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def encode_with(run: Callable[[Code], object]) -> bytes:
    """``run(code)`` with an encoding ``code``; returns the packed words."""
    import constriction

    enc, cat = constriction.stream.queue.RangeEncoder(), _categorical()

    def code(probs, symbols):
        enc.encode(symbols.astype(np.int32), cat, probs)
        return symbols

    run(code)
    return pack_words(enc.get_compressed())


def checked_decode(payload: bytes, run: Callable[[Code], object]):
    """``run(code)`` with a decoding ``code`` over ``payload``; returns what ``run`` returns. StreamError when
    constriction rejects the data, or when re-encoding the decoded symbols does not give ``payload`` back."""
    import constriction

    dec = constriction.stream.queue.RangeDecoder(unpack_words(payload))
    check, cat = constriction.stream.queue.RangeEncoder(), _categorical()

    def code(probs, _):
        symbols = dec.decode(cat, probs)
        check.encode(symbols, cat, probs)
        return symbols.astype(np.int64)

    try:
        out = run(code)
    except (AssertionError, ValueError, RuntimeError) as e:  # constriction's complaint about invalid data
        raise StreamError(f"latent section is corrupted ({e})") from None
    if pack_words(check.get_compressed()) != payload:
        raise StreamError("latent section is over-long or altered (not what the encoder writes for its symbols)")
    return out


def check_work(work: int, max_work: int | None) -> None:
    """BudgetError when a section's decoding work (≈ ns of CPU time) exceeds ``max_work`` (None: no limit)."""
    from ..budget import duration

    if max_work is not None and work > max_work:
        raise BudgetError(f"latent section needs {work:.2g} units of entropy-decoding work "
                          f"(≈ {duration(work / 1e9)} on a 2-core CPU), over this receiver's limit of "
                          f"{max_work:.2g}; --max-pixels lifts it for a trusted sender")
