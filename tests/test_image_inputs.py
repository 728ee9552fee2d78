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
