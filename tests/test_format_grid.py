"""Entropy coding of the selected channels: bit-exact, every encoder output decodable, canonical, bounded work,
thread-count independent, hostile-input safe."""

import hashlib
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from gsc.errors import BudgetError, StreamError
from gsc.format.grid import (MAX_MAGNITUDE, STEP_BITS, decode_latent, encode_latent, predictions,
                             read_latent_header, step_code, symbol_work)
from gsc.format.tables import STEPS

# The property test's case count: small by default so the suite stays fast; the 10k-case record run
# (docs/stream-format.md) sets GSC_PROPERTY_CASES=10000.
PROPERTY_CASES = int(os.environ.get("GSC_PROPERTY_CASES", "200"))


def sample(seed, c=3, h=32, w=48, scale=0.9):
    rng = np.random.default_rng(seed)
    # Spatially correlated symbols, like a latent: smoothed noise, then rounded.
    base = rng.normal(0, scale, (c, h + 2, w + 2))
    smooth = (base[:, 1:-1, 1:-1] + base[:, :-2, 1:-1] + base[:, 1:-1, :-2]) / 1.5
    q = np.round(smooth).astype(np.int64)
    idx = sorted(rng.choice(32, c, replace=False).tolist())
    return q, idx


@pytest.mark.parametrize("step", STEPS)
def test_round_trip_bit_exact_at_every_step(step):
    for seed in range(3):
        q, idx = sample(seed, c=1 + seed % 4)
        data = encode_latent(q, idx, 32, step)
        q2, idx2, step2 = decode_latent(data, 32, *q.shape[1:])
        assert np.array_equal(q, q2) and idx == idx2 and step2 == step


def test_zero_channels_and_all_zero_channel():
    assert encode_latent(np.zeros((0, 4, 4)), [], 32) == b""
    q2, idx, _ = decode_latent(b"", 32, 4, 4)
    assert q2.shape == (0, 4, 4) and idx == []
    q = np.zeros((2, 5, 7), dtype=np.int64)
    q[1, 2, 3] = -40
    data = encode_latent(q, [0, 319], 320)
    q2, idx, _ = decode_latent(data, 320, 5, 7)
    assert np.array_equal(q, q2) and idx == [0, 319]


def test_all_minimum_symbols_give_an_empty_payload_that_decodes():
    # Every symbol −m codes to all-zero words, which the encoder drops: the payload is empty.
    q = np.full((1, 32, 48), -1)
    data = encode_latent(q, [3], 32)
    _, _, _, start = read_latent_header(data, 32)
    assert start == len(data)   # nothing after the header: the case that used to be refused
    q2, idx, _ = decode_latent(data, 32, 32, 48)
    assert np.array_equal(q, q2) and idx == [3]


def random_case(rng):
    """A random latent of a random kind, C, Δ, grid size and channel count."""
    c = int(rng.integers(1, 17))
    h, w = (int(rng.integers(1, 41)), int(rng.integers(1, 41))) if rng.random() < 0.9 else \
        [(1, int(rng.integers(1, 200))), (int(rng.integers(1, 200)), 1)][int(rng.integers(2))]
    kind = rng.choice(["smooth", "constant", "extreme", "all-min", "all-max", "outlier", "uniform", "mixed"])
    m = int(rng.choice([1, 2, 5, 30, 300, MAX_MAGNITUDE]))
    if kind == "smooth":
        q = sample(int(rng.integers(1 << 30)), c, h, w, scale=float(rng.choice([0.3, 1, 4, 20])))[0]
    elif kind == "constant":
        q = np.full((c, h, w), int(rng.integers(-m, m + 1)))
    elif kind == "extreme":
        q = rng.choice([-MAX_MAGNITUDE, MAX_MAGNITUDE], (c, h, w))
    elif kind == "all-min":
        q = np.full((c, h, w), -m)
    elif kind == "all-max":
        q = np.full((c, h, w), m)
    elif kind == "outlier":
        q = np.zeros((c, h, w), dtype=np.int64)
        q[rng.integers(c), rng.integers(h), rng.integers(w)] = int(rng.choice([-m, m]))
    elif kind == "uniform":
        q = rng.integers(-m, m + 1, (c, h, w))
    else:  # each channel its own kind of range
        q = np.stack([rng.integers(-k, k + 1, (h, w)) for k in rng.choice([0, 1, 3, 40, MAX_MAGNITUDE], c)])
    if symbol_work(np.abs(q).max(axis=(1, 2)).tolist(), h, w) > 5e7:   # keep each case under ~0.1 s
        return random_case(rng)
    n_channels = int(rng.choice([32, 320]))
    idx = sorted(rng.choice(n_channels, c, replace=False).tolist())
    return np.asarray(q, dtype=np.int64), idx, n_channels, float(rng.choice(STEPS)), kind


@pytest.mark.parametrize("block", range(4))
def test_property_every_encoder_output_round_trips(block):
    """Random latents, including constant, extreme and all −m grids, at random C, Δ and sizes."""
    rng = np.random.default_rng(1000 + block)
    for case in range(-(-PROPERTY_CASES // 4)):
        q, idx, n, step, kind = random_case(rng)
        data = encode_latent(q, idx, n, step)
        q2, idx2, step2 = decode_latent(data, n, *q.shape[1:])
        assert np.array_equal(q, q2) and idx2 == idx and step2 == step, (block, case, kind, q.shape)


def test_context_model_beats_iid_entropy_on_clustered_symbols():
    # Non-zero values cluster in blobs, as in a latent; prediction and activity contexts should exploit that.
    rng = np.random.default_rng(1)
    blobs = np.kron(rng.random((8, 12)) < 0.3, np.ones((4, 4), dtype=bool))
    q = (blobs * rng.integers(1, 3, (32, 48)) * rng.choice([-1, 1], (32, 48)))[None].astype(np.int64)
    data = encode_latent(q, [5], 32)
    _, counts = np.unique(q, return_counts=True)
    iid_bits = -(counts * np.log2(counts / counts.sum())).sum()
    assert len(data) * 8 < 0.85 * iid_bits


DECODE_SNIPPET = """
import sys, hashlib, torch, numpy as np
torch.set_num_threads(int(sys.argv[1]))
from gsc.format.grid import decode_latent
data = sys.stdin.buffer.read()
q, idx, step = decode_latent(data, 32, 32, 48)
print(hashlib.sha256(q.tobytes() + bytes(idx)).hexdigest())
"""


def test_same_symbols_in_separate_processes_with_1_and_2_threads():
    q, idx = sample(3, c=4, scale=3.0)
    data = encode_latent(q, idx, 32)
    expected = hashlib.sha256(q.tobytes() + bytes(idx)).hexdigest()
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", DECODE_SNIPPET, threads], input=data, capture_output=True,
                             check=True, env=env)
        assert out.stdout.decode().strip() == expected


def test_appended_bytes_are_refused():
    """Over-long sections: any 1–4 bytes after the coder's last word are refused, zeros included."""
    rng = np.random.default_rng(5)
    for seed in range(6):
        q, idx = sample(seed, c=2, h=8, w=12)
        data = encode_latent(q, idx, 32)
        for n in range(1, 5):
            for tail in (bytes(n), bytes(rng.integers(0, 256, n, dtype=np.uint8)), b"\xff" * n):
                with pytest.raises(StreamError):
                    decode_latent(data + tail, 32, 8, 12)


def test_mutated_latent_sections_raise_stream_error_or_decode_in_range():
    q, idx = sample(4, c=2, h=8, w=8)
    data = encode_latent(q, idx, 32)
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(300):
        m = bytearray(data)
        kind = rng.integers(3)
        if kind == 0:
            m[rng.integers(len(m))] ^= int(rng.integers(1, 256))
        elif kind == 1:
            m = m[: rng.integers(len(m))]
        else:
            m += bytes(rng.integers(0, 256, rng.integers(1, 8)).astype(np.uint8))
        try:
            q2, idx2, _ = decode_latent(bytes(m), 32, 8, 8)
        except StreamError:
            refused += 1
            continue
        assert q2.shape[1:] == (8, 8) and all(0 <= i < 32 for i in idx2)
        if m:
            assert encode_latent(q2, idx2, 32, read_latent_header(bytes(m), 32)[1]) == bytes(m)  # canonical
    assert refused > 150


def test_the_predictor_is_loco_i():
    """Position by position, LOCO-I's median predictor (first row: left; first column: up; origin: 0)."""
    q = np.random.default_rng(3).integers(-6, 7, (2, 5, 8))
    for y, x in [(0, 0), (0, 3), (2, 0), (3, 5)]:
        a = q[0, y, x - 1] if x else 0
        b = q[0, y - 1, x] if y else 0
        c = q[0, y - 1, x - 1] if x and y else 0
        expected = a if y == 0 else b if x == 0 else \
            min(a, b) if c >= max(a, b) else max(a, b) if c <= min(a, b) else a + b - c
        assert predictions(q)[0, y, x] == expected


def test_smooth_ramp_costs_far_less_than_its_marginal_entropy():
    """Predictive coding: a wide-range but smooth channel is cheap (what lite's g_a is trained for)."""
    yy, xx = np.mgrid[0:32, 0:48]
    q = ((xx + yy) // 3 - 13)[None]  # values −13..12, every one about equally common
    _, counts = np.unique(q, return_counts=True)
    marginal_bits = -(counts * np.log2(counts / counts.sum())).sum()
    coded_bits = 8 * len(encode_latent(q, [0], 32))
    assert coded_bits < 0.25 * marginal_bits


def hand_built_section(c, m, payload=b"\x01", n_channels=32):
    """A latent section header claiming C channels of magnitude m, then ``payload``."""
    from gsc.bits import BitWriter

    w = BitWriter()
    w.write(c - 1, 4), w.write(step_code(1.0), STEP_BITS)
    for i in range(c):
        w.write(i, 5)
    for _ in range(c):
        w.write_eg(m, 1)
    return w.to_bytes() + payload


def test_work_over_the_limit_is_refused_before_decoding():
    data = hand_built_section(16, MAX_MAGNITUDE)
    work = symbol_work([MAX_MAGNITUDE] * 16, 512, 512)
    t0 = time.perf_counter()
    with pytest.raises(BudgetError, match="entropy-decoding work"):
        decode_latent(data, 32, 512, 512, max_work=work - 1)
    assert time.perf_counter() - t0 < 0.05


@pytest.mark.parametrize("shape", [(16, 135, 240), (16, 64, 1024), (16, 32, 32), (1, 1, 1024)])
def test_the_worst_sections_the_default_limit_admits_decode_within_a_second_of_cpu(shape):
    """Per shape (4K; long; small; one row), the largest m whose work fits the default limit, with
    uniformly random symbols (the slowest payload to decode)."""
    from gsc.budget import DecodeLimits

    c, h, w = shape
    limit = DecodeLimits().max_symbol_work
    m = max((k for k in range(1, MAX_MAGNITUDE + 1) if symbol_work([k] * c, h, w) <= limit), default=None)
    assert m is not None and symbol_work([m] * c, h, w) > limit / 2
    q = np.random.default_rng(0).integers(-m, m + 1, (c, h, w))
    data = encode_latent(q, list(range(c)), 32)
    t0 = time.process_time()   # CPU time: what the section costs, whatever else the machine runs
    q2, _, _ = decode_latent(data, 32, h, w, max_work=limit)
    seconds = time.process_time() - t0
    assert np.array_equal(q, q2)
    assert seconds < 1.0, (shape, m, seconds)
