"""The bare AV1 stream of the low-band benchmark: rebuilt container, bit-exact decode, hostile bounds."""

import struct

import numpy as np
import pytest

from gsc.errors import StreamError
from gsc.eval import av1


@pytest.fixture(scope="module")
def thumbnail():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:56]
    base = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("speed", [4, 8])   # loop restoration on, off
def test_bare_stream_decodes_like_the_avif_file(thumbnail, speed):
    import imagecodecs

    avif = av1.avif_encoder(speed)(thumbnail, 30)
    stream = av1.bare(avif)
    parts = av1.framing(avif)
    assert len(stream) == av1.HEADER_BYTES + parts["frame_payload"]
    assert parts["mdat"] == parts["temporal_delimiter"] + parts["sequence_header"] + parts["frame_obu_header"] \
        + parts["frame_payload"]
    want = imagecodecs.avif_decode(avif)[..., :3]
    got = av1.decode(stream)
    assert got.shape == (40, 56, 3)
    assert np.array_equal(got, want)
    assert np.array_equal(av1.decode(stream, threads=2), got)


def test_sequence_header_round_trips(thumbnail):
    parts = av1.split(av1.avif_encoder(6)(thumbnail, 10))
    fields = av1.parse_sequence_header(parts["sequence"])
    assert (fields["max_frame_width_minus_1"], fields["max_frame_height_minus_1"]) == (55, 39)
    assert av1.write_sequence_header(fields) == parts["sequence"]


def test_hostile_bare_streams_are_refused_before_decoding(thumbnail):
    stream = av1.bare(av1.avif_encoder(8)(thumbnail, 10))
    with pytest.raises(StreamError, match="shorter"):
        av1.decode(stream[:5])
    with pytest.raises(StreamError, match="payload bytes"):
        av1.decode(stream[:-1])
    huge = struct.pack(">HHH", av1.MAX_SIDE, 9, len(stream) - av1.HEADER_BYTES) + stream[av1.HEADER_BYTES:]
    with pytest.raises(StreamError, match="side"):
        av1.decode(huge)
    cut = struct.pack(">HHH", *struct.unpack(">HHH", stream[:6])[:2], 10) + stream[6:16]
    with pytest.raises(StreamError, match="AV1: "):          # the decoder's error, as one line
        av1.decode(cut)


def test_obu_sizes_are_bounded_by_the_bytes_left():
    with pytest.raises(StreamError, match="left"):
        av1.obus(bytes([av1.OBU_FRAME << 3 | 2, 0x7F, 1, 2]))
    with pytest.raises(StreamError, match="longer than 8"):
        av1.obus(bytes([av1.OBU_FRAME << 3 | 2]) + b"\xff" * 9)
    assert av1.obus(av1.obu(av1.OBU_FRAME, b"abc")) == [(av1.OBU_FRAME, 2, b"abc")]


def test_frame_header_is_measured(thumbnail):
    coarse, fine = (av1.framing(av1.avif_encoder(6)(thumbnail, q)) for q in (0, 99))
    assert coarse["base_q_idx"] == 255 and fine["base_q_idx"] < 16   # libavif's quality → quantizer ends
    for f in (coarse, fine):
        assert 8 <= f["frame_header"] <= 16 and f["frame_header"] == -(-f["frame_header_bits"] // 8)


@pytest.mark.parametrize("quality", [0, 30, 70])
def test_dav1d_decodes_the_same_picture_as_libaom(thumbnail, quality):
    pytest.importorskip("av")
    stream = av1.bare(av1.avif_encoder(6)(thumbnail, quality))
    planes = av1.dav1d_planes(stream)
    assert all(np.array_equal(a, b) for a, b in zip(planes, av1.dav1d_planes(stream, threads=4)))
    rgb = av1.decode(stream).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])              # BT.601: RGB → Y undoes libavif's conversion
    inside = (rgb.min(-1) > 0) & (rgb.max(-1) < 255)           # up to RGB's rounding, where nothing clipped
    assert inside.mean() > 0.5
    assert np.abs(luma - planes[0])[inside].max() <= 0.6
