"""Every image mode becomes RGB in [0, 1]; bad inputs give a one-line GSCError."""

import numpy as np
import pytest
from PIL import Image

from gsc.errors import GSCError
from gsc.image import load_image, pad_to_multiple, save_image


def write(tmp_path, name, img):
    p = tmp_path / name
    img.save(p)
    return p


def test_modes(tmp_path):
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red → white background
    x = load_image(write(tmp_path, "a.png", rgba))
    assert x.shape == (3, 30, 40) and np.allclose(x.numpy(), 1.0)
    gray = Image.fromarray(np.full((20, 24), 128, np.uint8), "L")
    x = load_image(write(tmp_path, "g.png", gray))
    assert x.shape == (3, 20, 24) and np.allclose(x.numpy(), 128 / 255)
    pal = Image.new("P", (32, 32))
    pal.putpalette([0, 0, 255] * 256)
    x = load_image(write(tmp_path, "p.png", pal))
    assert np.allclose(x[2].numpy(), 1.0) and np.allclose(x[0].numpy(), 0.0)
    deep = Image.fromarray(np.full((17, 19), 65535, np.uint16))
    x = load_image(write(tmp_path, "d.png", deep))
    assert x.shape == (3, 17, 19) and np.allclose(x.numpy(), 1.0)


def test_errors(tmp_path):
    with pytest.raises(GSCError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GSCError, match="not a readable image"):
        load_image(tmp_path / "notes.txt")
    with pytest.raises(GSCError, match="at least 16×16"):
        load_image(write(tmp_path, "small.png", Image.new("RGB", (15, 40))))


def test_pad_and_atomic_save(tmp_path):
    import torch

    x = torch.rand(3, 17, 33)
    p = pad_to_multiple(x, 16)
    assert p.shape == (3, 32, 48) and torch.equal(p[:, :17, :33], x)
    save_image(x, tmp_path / "o.png")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["o.png"]
    with pytest.raises(GSCError, match="output folder does not exist"):
        save_image(x, tmp_path / "nope" / "o.png")


def test_exif_orientation_is_applied(tmp_path):
    # A 40×24 landscape image stored with Orientation = 6 ("rotate 90° clockwise to view"): seen as 24×40.
    a = np.zeros((24, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)          # left half red in the stored pixels
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif.tobytes(), quality=95)
    x = load_image(p)
    assert x.shape == (3, 40, 24)
    # After a clockwise turn the stored left half is on top.
    assert x[0, :15].mean() > 0.8 and x[0, 25:].mean() < 0.2


def test_float_and_wide_integer_images_are_read_by_their_real_range(tmp_path):
    unit = np.linspace(0, 1, 32 * 20, dtype=np.float32).reshape(20, 32)
    x = load_image(write(tmp_path, "unit.tif", Image.fromarray(unit, "F")))
    assert np.allclose(x[0].numpy(), unit, atol=1e-6)
    bytes_range = np.round(unit * 255).astype(np.float32)
    x = load_image(write(tmp_path, "bytes.tif", Image.fromarray(bytes_range, "F")))
    assert np.allclose(x[1].numpy(), bytes_range / 255, atol=1e-6)   # not clipped to white
    for bad in (unit * 2.5, unit - 0.5, np.where(unit > 0.5, np.nan, unit).astype(np.float32)):
        with pytest.raises(GSCError, match="samples|non-finite"):
            load_image(write(tmp_path, "bad.tif", Image.fromarray(bad.astype(np.float32), "F")))
    wide = Image.fromarray((unit * 70000).astype(np.int32), "I")
    with pytest.raises(GSCError, match="0–65535"):
        load_image(write(tmp_path, "wide.tif", wide))


def test_animated_images_are_refused_and_sizes_are_checked_before_decoding(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:])
    with pytest.raises(GSCError, match="animated \\(3 frames\\)"):
        load_image(tmp_path / "a.webp")
    import struct
    import zlib

    Image.new("RGB", (16, 16)).save(tmp_path / "big.png")
    raw = bytearray((tmp_path / "big.png").read_bytes())
    raw[16:24] = struct.pack(">II", 16384, 8192)   # 134 Mpx: over the format's 67 Mpx, under PIL's bomb error
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    (tmp_path / "big.png").write_bytes(bytes(raw))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # and no warning on the way
        with pytest.raises(GSCError, match="16384×8192; the format's limit"):
            load_image(tmp_path / "big.png")
