"""Mutation fuzzing of the stream reader (used by tests and ``benchmarks/fuzz_stream.py``).

Two kinds of mutants: plain ones (bit flips, byte changes, truncations, insertions, deletions,
appended bytes), which the checks should catch, and *sealed* ones whose checks are recomputed after the
mutation (``mutate_sealed``), so that the header parser and both entropy decoders see hostile input behind
valid checks. Every mutant must either be refused with ``StreamError`` (``BudgetError`` included) or be read
by ``Codec.info`` (header, caption, symbols, budget verdict); a plain mutant that is read must use only the
original's header and sections (a version-4 reader drops what fails its check and says so, ``leaked``);
anything else is a crash, and a read that
takes more than ``timeout`` seconds of CPU time is a hang (CPU time, so that other jobs on the machine
cannot fake one; a loop that never ends burns CPU all the same).
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from ..bits import ceil_div
from ..errors import StreamError


SAMPLE_SCALE_CODE = 6      # f ≈ 11.3: where lite's rate control lands at 0.01 bpp


def _grid_symbols(rng, channels: int, w: int, h: int, n_channels: int):
    from ..format.grid import grid_shape

    q = np.round(rng.laplace(0, 0.7, (channels, *grid_shape(w, h)))).astype(np.int64)
    return q, sorted(rng.choice(n_channels, channels, replace=False).tolist())


def _band_symbols(rng, channels: int, w: int, h: int, _n_channels: int):
    from ..format.bands import BandLatent, _shapes
    from ..format.tables import SCALES, ThumbnailGeometry

    q = []
    for shape in _shapes(ThumbnailGeometry(w, h, SCALES[SAMPLE_SCALE_CODE]), channels):
        p = np.round(rng.laplace(0, 0.7, shape)).astype(np.int64)
        p[0] = rng.integers(-60, 60, shape[1:])              # DC: block means, wide
        q.append(p)
    return BandLatent(SAMPLE_SCALE_CODE, 12, 2, 3, q)


def _grid_section(symbols, size: tuple[int, int], n_channels: int) -> bytes:
    from ..format.grid import encode_latent

    return encode_latent(*symbols, n_channels)


def _band_section(latent, size: tuple[int, int], _n_channels: int) -> bytes:
    from ..format.bands import encode_bands

    return encode_bands(latent, *size)


# By latent section kind: synthetic symbols, and their section.
_SAMPLERS = {"grid": (_grid_symbols, _grid_section), "bands": (_band_symbols, _band_section)}


def sample_symbols(channels: int = 2, size: tuple[int, int] = (768, 512), seed: int = 0, preset: str = "lite"):
    """Synthetic latent symbols as ``sample_stream`` codes them: for lite a ``BandLatent`` (C DCT bands of the
    thumbnail), for the flux presets the grid (C, ⌈H/16⌉, ⌈W/16⌉) and ascending indices."""
    from ..presets import get_preset

    p = get_preset(preset)
    return _SAMPLERS[p.coding][0](np.random.default_rng(seed), channels, *size, p.latent_channels)


def sample_stream(caption: str = "A red wooden door with a round white knob and a diagonal brace, in bright sun.",
                  channels: int = 2, size: tuple[int, int] = (768, 512), seed: int = 0, preset: str = "lite",
                  version: int = 4) -> bytes:
    """A realistic stream built without any model weights (synthetic latent symbols), for lite (its DCT
    bands) or a flux preset (its channel grid), in container ``version`` 4 (one layer; above 1 Mpx, in tiles)
    or 3."""
    from ..format import container as fmt
    from ..format import layered
    from ..format.caption import encode_caption
    from ..presets import get_preset

    from ..format import tiles

    p = get_preset(preset)

    def latent(box: tuple[int, int]) -> bytes:
        return _SAMPLERS[p.coding][1](sample_symbols(channels, box, seed, preset), box, p.latent_channels)

    header = fmt.Header(p.id, *size)
    if version == fmt.VERSION:
        return fmt.pack(header, encode_caption(caption), latent(size))
    if tiles.tiled(*size):     # above 1 Mpx: a section per tile, each for its coded box
        return layered.pack_tiles(header, encode_caption(caption), [[latent(t.size) for t in tiles.grid(*size)]])
    return layered.pack(header, encode_caption(caption), [latent(size)])


def sample_layered_stream(groups: tuple = (2, 3, 1), size: tuple[int, int] = (256, 160), seed: int = 0,
                          preset: str = "flux-tiny",
                          caption: str = "A red wooden door with a round white knob.") -> bytes:
    """A version-4 grid stream of several layers (channel groups of the given sizes, synthetic symbols)."""
    from ..format import container as fmt
    from ..format import layered
    from ..format.caption import encode_caption
    from ..format.grid import encode_latent
    from ..presets import get_preset

    p = get_preset(preset)
    q, indices = sample_symbols(sum(groups), size, seed, preset)
    layers, start = [], 0
    for g in groups:
        layers.append(encode_latent(q[start:start + g], indices[start:start + g], p.latent_channels))
        start += g
    return layered.pack(fmt.Header(p.id, *size), encode_caption(caption), layers)


def sample_lite_layers(layers: int = 3, size: tuple[int, int] = (768, 512), seed: int = 0,
                       caption: str = "A red wooden door with a round white knob.") -> bytes:
    """A version-4 lite stream of several layers: synthetic bands, each later layer at half the step before
    (its bands twice the parent's, give or take one, and new non-zeros where the parent is zero)."""
    from ..format import container as fmt
    from ..format import layered
    from ..format.band_layers import encode_layer
    from ..format.bands import BandLatent, encode_bands
    from ..format.caption import encode_caption
    from ..presets import get_preset

    rng = np.random.default_rng(seed)
    latents = [sample_symbols(2, size, seed, "lite")]
    for _ in range(layers - 1):
        a = latents[-1]
        q = [2 * p + rng.integers(-1, 2, p.shape) * (rng.random(p.shape) < 0.3) for p in a.q]
        latents.append(BandLatent(a.scale_code, a.luma_code - 4, a.chroma_code, a.texture_code, q))
    sections = [encode_bands(latents[0], *size)] + [encode_layer(a, b, *size) for a, b in zip(latents, latents[1:])]
    return layered.pack(fmt.Header(get_preset("lite").id, *size), encode_caption(caption), sections)


def hostile_streams() -> dict[str, bytes]:
    """Tiny, well-formed lite streams that ask for huge work, built to docs/stream-format.md.

    Each is valid (checksum, padding, limits of the format); a receiver must refuse them from the header."""
    from ..bits import BitWriter
    from ..format import container as fmt
    from ..presets import get_preset

    lite = get_preset("lite").id

    def latent(c: int, m: int, payload: bytes = b"\x01") -> bytes:
        w = BitWriter()
        w.write(0, 4), w.write(c - 1, 6), w.write(0, 5), w.write(2, 3), w.write(0, 3)   # f = 4, finest Δ
        for _ in range(5):
            w.write_eg(m, 1)                            # DC of Y, Cb, Cr; AC of Y, of Cb/Cr
        return w.to_bytes() + payload

    return {
        "8192², C = 0": fmt.pack(fmt.Header(lite, 8192, 8192), b"", b""),
        "768×512, steps = 1000": fmt.pack(fmt.Header(lite, 768, 512, steps=1000, seed=0), b"", b""),
        "8192², C = 64, m = 4095, 1-byte payload": fmt.pack(fmt.Header(lite, 8192, 8192), b"", latent(64, 4095)),
        "8192², C = 64, m = 4095, steps = 1000": fmt.pack(fmt.Header(lite, 8192, 8192, steps=1000, seed=0), b"",
                                                         latent(64, 4095)),
    }


def mutate(data: bytes, rng: random.Random) -> bytes:
    m = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 and m:      # flip one bit
        i = rng.randrange(len(m))
        m[i] ^= 1 << rng.randrange(8)
    elif kind == 1 and m:    # replace some bytes
        for _ in range(rng.randint(1, 4)):
            m[rng.randrange(len(m))] = rng.randrange(256)
    elif kind == 2:          # truncate
        m = m[: rng.randrange(len(m) + 1)]
    elif kind == 3:          # insert
        i = rng.randrange(len(m) + 1)
        m[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == 4 and m:    # delete a run
        i = rng.randrange(len(m))
        del m[i:i + rng.randint(1, 8)]
    else:                    # append garbage
        m += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(m)


def reseal(data: bytes) -> bytes:
    """Recompute the CRC so the mutation reaches the parsers behind it."""
    from ..format.container import crc as stream_crc

    if len(data) < 3:
        return data
    m = bytearray(data)
    crc = stream_crc(bytes(m))
    m[1], m[2] = crc >> 8, crc & 0xFF
    return bytes(m)


def mutate_sealed(data: bytes, rng: random.Random) -> bytes:
    """A mutant whose checks still pass, so that the mutation reaches the parsers behind them: version 3,
    the CRC recomputed; version 4, one section (the caption or a layer) mutated and the stream packed again
    with fresh checks."""
    from ..format import container as fmt
    from ..format import layered

    if data[0] & 0xF == fmt.VERSION:
        return reseal(mutate(data, rng))
    s = layered.read(data)
    sections = [s.caption_data, *s.layers]
    k = rng.randrange(len(sections))
    sections[k] = mutate(sections[k], rng)[:fmt.MAX_CAPTION_BYTES if k == 0 else None]
    return layered.pack(s.header, sections[0], sections[1:], s.report.declared)


def leaked(original: bytes, mutant: bytes, payload) -> bool:
    """Whether reading ``mutant`` (``payload``: what ``Codec.read`` made of it) used a header or section that
    differs from ``original``'s, or called a shortened stream intact: what the checks exist to prevent."""
    from ..format import layered

    a, b = layered.read(original), layered.read(mutant)
    used = b.layers[:payload.report.decoded]
    return (b.header != a.header or b.caption_data not in (a.caption_data, b"")
            or used != a.layers[:len(used)] or (payload.report.intact and len(used) < len(a.layers)))


@dataclass
class FuzzReport:
    cases: int = 0
    refused: int = 0
    accepted: int = 0
    crashes: list = field(default_factory=list)
    hangs: list = field(default_factory=list)
    leaks: list = field(default_factory=list)   # read, yet from a header or section unlike the original's
    seconds: float = 0.0
    slowest: float = 0.0        # wall seconds, the slowest case
    slowest_cpu: float = 0.0    # CPU seconds, the slowest case


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def fuzz(data: bytes, n: int, seed: int = 0, resealed_share: float = 0.5, timeout: float = 2.0,
         progress=None) -> FuzzReport:
    from ..codec import Codec

    codec = Codec()
    rng = random.Random(seed)
    report = FuzzReport()
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        old = signal.signal(signal.SIGPROF, _alarm)
    t_start = time.perf_counter()
    try:
        for k in range(n):
            sealed = rng.random() < resealed_share
            m = mutate_sealed(data, rng) if sealed else mutate(data, rng)
            if m == data:
                continue
            report.cases += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                try:
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_PROF, timeout)
                    info = codec.info(m)
                    assert info["channels"] == len(info["indices"])
                    outcome = "leak" if not sealed and leaked(data, m, codec.read(m)) else "accepted"
                except StreamError:
                    outcome = "refused"
                except _Timeout:
                    outcome = "hang"
                except Exception as e:  # noqa: BLE001 — anything else is exactly what we hunt
                    outcome = f"{type(e).__name__}: {e}"
                finally:
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_PROF, 0)
            except _Timeout:   # the timer fired just as the case ended: it still took too long
                outcome = "hang"
            if outcome == "accepted":
                report.accepted += 1
            elif outcome == "refused":
                report.refused += 1
            elif outcome == "hang":
                report.hangs.append(m)
            elif outcome == "leak":
                report.leaks.append(m)
            else:
                report.crashes.append((m, outcome))
            report.slowest = max(report.slowest, time.perf_counter() - t0)
            report.slowest_cpu = max(report.slowest_cpu, time.process_time() - c0)
            if progress is not None:
                progress(k)
    finally:
        if use_alarm:
            signal.signal(signal.SIGPROF, old)
    report.seconds = time.perf_counter() - t_start
    return report
