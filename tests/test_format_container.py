"""The stream container: exact round trips, a ≤ 6-byte header on Kodak-sized images, hostile input."""

import random

import pytest

from gsc.format import container as fmt
from gsc.errors import StreamError


@pytest.mark.parametrize("size", [(768, 512), (512, 768), (481, 321), (16, 16), (4000, 3000), (17, 1000), (16384, 4096)])
@pytest.mark.parametrize("decoder", [(None, None), (4, 0), (28, 123456)])
def test_header_round_trip(size, decoder):
    w, h = size
    header = fmt.Header(preset_id=3, width=w, height=h, steps=decoder[0], seed=decoder[1])
    data = fmt.pack(header, b"caption!", b"\x01\x02latent")
    s = fmt.unpack(data)
    assert s.header == header
    assert s.caption_data == b"caption!"
    assert s.latent_data == b"\x01\x02latent"
    assert s.header_bytes + len(s.caption_data) + len(s.latent_data) == len(data)


@pytest.mark.parametrize("size", [(768, 512), (512, 768)])
def test_kodak_header_fits_six_bytes(size):
    # Kodak captions code to 22–44 bytes; the container must stay within 6 bytes up to 63.
    for caption_len in (0, 33, 45, 63):
        data = fmt.pack(fmt.Header(0, *size), b"x" * caption_len, b"y" * 200)
        assert fmt.unpack(data).header_bytes <= 6, caption_len


def test_refuses_oversized_image_before_allocating():
    with pytest.raises(StreamError, match="exceeds the format's limit"):
        fmt.pack(fmt.Header(0, 20000, 16), b"", b"")
    # Craft a header claiming 16384 × 16384 px (> MAX_PIXELS): refused at once.
    good = fmt.pack(fmt.Header(0, 16384, 4096), b"", b"")
    from gsc.bits import BitWriter, zigzag

    w = BitWriter()
    w.write(0, 3), w.write(1, 1), w.write(0, 1), w.write_eg(1023, 5)
    w.write_eg(zigzag(1024 - round(2 * 1024 / 3)), 2), w.write(1, 1), w.write_eg(0, 6)
    body = bytearray(good[:3] + w.to_bytes())
    crc = fmt.crc(bytes(body))
    body[1], body[2] = crc >> 8, crc & 0xFF
    with pytest.raises(StreamError, match="exceeds the format's limit"):
        fmt.unpack(bytes(body))


def test_bad_magic_version_and_checksum():
    data = bytearray(fmt.pack(fmt.Header(0, 768, 512), b"abc", b"def"))
    with pytest.raises(StreamError, match="magic"):
        fmt.unpack(b"\x00" + bytes(data[1:]))
    with pytest.raises(StreamError, match="version"):
        fmt.unpack(bytes([data[0] + 1]) + bytes(data[1:]))
    # A version-2 stream (the previous latent coding) is refused in one line, even with a valid checksum.
    v2 = bytearray([0xB2]) + data[1:]
    crc = fmt.crc(bytes(v2))
    v2[1], v2[2] = crc >> 8, crc & 0xFF
    with pytest.raises(StreamError, match="stream version 2 is not supported"):
        fmt.unpack(bytes(v2))
    data[-1] ^= 0x10
    with pytest.raises(StreamError, match="checksum"):
        fmt.unpack(bytes(data))
    with pytest.raises(StreamError):
        fmt.unpack(b"")
    with pytest.raises(StreamError):
        fmt.unpack("not bytes")


def test_every_truncation_and_single_byte_mutation_is_refused():
    data = fmt.pack(fmt.Header(0, 768, 512, steps=3, seed=7), b"a caption section", b"latent section bytes")
    for n in range(len(data)):
        with pytest.raises(StreamError):
            fmt.unpack(data[:n])
    rng = random.Random(0)
    for i in range(len(data)):
        mutated = bytearray(data)
        mutated[i] ^= rng.randrange(1, 256)
        with pytest.raises(StreamError):
            fmt.unpack(bytes(mutated))
