"""`gsc encode` / `gsc decode` with the flux-tiny preset, end to end through the CLI (typer's CliRunner
on gsc.cli.app, in process; tests/test_flux_generator.py checks the separate-process case)."""

import importlib.util

import numpy as np
import pytest

pytest.importorskip("diffusers")
if importlib.util.find_spec("compressai") is None:  # imported through gsc's torchvision-free shim
    pytest.skip("compressai is not installed", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def test_flux_tiny_cli_encode_then_decode(tmp_path):
    from PIL import Image

    from gsc.cli import app

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:56]
    smooth = np.stack([x / 56, y / 40, (x + y) / 96], -1) * 200 + rng.random((40, 56, 3)) * 40
    Image.fromarray(smooth.astype(np.uint8)).save(tmp_path / "in.png")
    runner = CliRunner()
    enc = runner.invoke(app, ["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.gsc"), "--preset",
                              "flux-tiny", "--channels", "2", "--caption", "a gradient of colours"])
    assert enc.exit_code == 0, (enc.output, enc.exception)
    assert (tmp_path / "x.gsc").stat().st_size < 64
    for name in ("a.png", "b.png"):
        dec = runner.invoke(app, ["decode", str(tmp_path / "x.gsc"), "-o", str(tmp_path / name), "--quiet"])
        assert dec.exit_code == 0, (dec.output, dec.exception)
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert a.shape == (40, 56, 3)
    assert np.array_equal(a, b)  # same stream, same seed: the same image
    assert a.std() > 0
