"""Entropy coding of the selected channels: bit-exact, thread-count independent, hostile-input safe."""

import subprocess
import sys

import numpy as np
import pytest

from gsc.errors import StreamError
from gsc.latent.coding import decode_latent, encode_latent


def sample(seed, c=3, h=32, w=48, scale=0.9):
    rng = np.random.default_rng(seed)
    # Spatially correlated symbols, like a latent: smoothed noise, then rounded.
    base = rng.normal(0, scale, (c, h + 2, w + 2))
    smooth = (base[:, 1:-1, 1:-1] + base[:, :-2, 1:-1] + base[:, 1:-1, :-2]) / 1.5
    q = np.round(smooth).astype(np.int64)
    idx = sorted(rng.choice(32, c, replace=False).tolist())
    return q, idx


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("step", [1.0, 2.5])
def test_round_trip_bit_exact(seed, step):
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


def test_context_model_beats_iid_entropy_on_clustered_symbols():
    # Non-zero values cluster in blobs, as in a latent; prediction and activity contexts should exploit that.
    rng = np.random.default_rng(1)
    blobs = np.kron(rng.random((8, 12)) < 0.3, np.ones((4, 4), dtype=bool))
    q = (blobs * rng.integers(1, 3, (32, 48)) * rng.choice([-1, 1], (32, 48)))[None].astype(np.int64)
    idx = [5]
    data = encode_latent(q, idx, 32)
    values, counts = np.unique(q, return_counts=True)
    p = counts / counts.sum()
    iid_bits = -(counts * np.log2(p)).sum()
    assert len(data) * 8 < 0.85 * iid_bits


DECODE_SNIPPET = """
import sys, hashlib, torch, numpy as np
torch.set_num_threads(int(sys.argv[1]))
from gsc.latent.coding import decode_latent
data = sys.stdin.buffer.read()
q, idx, step = decode_latent(data, 32, 32, 48)
print(hashlib.sha256(q.tobytes() + bytes(idx)).hexdigest())
"""


def test_same_symbols_in_separate_processes_with_1_and_2_threads():
    q, idx = sample(3, c=4)
    data = encode_latent(q, idx, 32)
    import hashlib

    expected = hashlib.sha256(q.tobytes() + bytes(idx)).hexdigest()
    for threads in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", DECODE_SNIPPET, threads], input=data, capture_output=True,
                             check=True)
        assert out.stdout.decode().strip() == expected


def test_mutated_latent_sections_raise_stream_error_or_decode_in_range():
    q, idx = sample(4, c=2, h=8, w=8)
    data = encode_latent(q, idx, 32)
    rng = np.random.default_rng(0)
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
            continue
        assert q2.shape[1:] == (8, 8) and all(0 <= i < 32 for i in idx2)


def test_training_rate_term_uses_the_coders_predictor():
    """gsc.latent.lite.med_residual (the codec stage's rate term) sees the residuals the stream codes."""
    import torch

    from gsc.latent.coding import AdaptiveContextModel
    from gsc.latent.lite import med_residual

    q = np.random.default_rng(3).integers(-6, 7, (2, 5, 8))
    residual = med_residual(torch.from_numpy(q).float()[None])[0].numpy()
    model = AdaptiveContextModel(6)
    expected = np.array([[[q[k, y, x] - model.predict(q[k], y, x)[0] for x in range(8)] for y in range(5)]
                         for k in range(2)])
    np.testing.assert_array_equal(residual, expected)


def test_smooth_ramp_costs_far_less_than_its_marginal_entropy():
    """Predictive coding: a wide-range but smooth channel is cheap (what lite's g_a is trained for)."""
    yy, xx = np.mgrid[0:32, 0:48]
    q = ((xx + yy) // 3 - 13)[None]  # values −13..12, every one about equally common
    _, counts = np.unique(q, return_counts=True)
    marginal_bits = -(counts * np.log2(counts / counts.sum())).sum()
    coded_bits = 8 * len(encode_latent(q, [0], 32))
    assert coded_bits < 0.25 * marginal_bits
