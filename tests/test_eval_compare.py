"""gsc compare on a Kodak image: the tiles hold the right images, and the sizes add up."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsc.cli import main

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def _tile(sheet: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    return sheet[y:y + h, x:x + w]


def test_compare_sheet_holds_the_decoded_images(tmp_path, one_thread, capsys):
    from gsc.eval.classical import get_codec, resize

    image = KODAK / "kodim23.png"
    out, keep = tmp_path / "sheet.png", tmp_path / "files"
    crop = (300, 100, 96, 64)
    rc = main(["compare", str(image), "--channels", "1", "--captions", str(KODAK / "captions.json"),
               "--codecs", "webp,jxl", "--crop", ",".join(map(str, crop)), "-o", str(out), "--keep", str(keep),
               "--tile-width", "768"])   # 1:1 (the default shrinks tiles to 512 px), so tiles are the pixels
    assert rc == 0, capsys.readouterr().err
    sheet = np.asarray(Image.open(out).convert("RGB"))
    meta = json.loads((keep / "kodim23.json").read_text())
    original, gsc, webp, jxl = meta["tiles"]
    with Image.open(image) as im:
        ref = np.asarray(im.convert("RGB"))
    h, w = ref.shape[:2]

    # the original's tile is the file (its crop too; its tile carries the red crop outline, so compare away from it)
    assert np.array_equal(_tile(sheet, original["crop_box"]), ref[100:164, 300:396])
    assert np.array_equal(_tile(sheet, original["box"])[:90], ref[:90])

    # gsc: the stream's size is the tile's, and a separate `gsc decode` of it gives the tile's pixels
    stream = keep / "kodim23.gsc"
    assert stream.stat().st_size == gsc["bytes"] and gsc["bpp"] == pytest.approx(gsc["bytes"] * 8 / (w * h))
    from gsc.codec import Codec

    info = Codec().info(stream.read_bytes())
    assert info["header_bytes"] + info["caption_bytes"] + info["latent_bytes"] == info["total_bytes"] == gsc["bytes"]
    assert info["channels"] == 1
    decoded = tmp_path / "dec.png"
    subprocess.run([sys.executable, "-m", "gsc", "decode", str(stream), "-o", str(decoded), "-q"], check=True)
    dec = np.asarray(Image.open(decoded).convert("RGB"))
    assert np.array_equal(_tile(sheet, gsc["box"]), dec)
    assert np.array_equal(_tile(sheet, gsc["crop_box"]), dec[100:164, 300:396])

    # each classical tile: its file fits gsc's bytes, and decoding + bicubic upscaling it gives the tile
    for tile, name, suffix in ((webp, "webp", "webp"), (jxl, "jxl", "jxl")):
        data = (keep / f"kodim23.{suffix}").read_bytes()
        assert len(data) == tile["bytes"] <= gsc["bytes"]
        up = resize(get_codec(name).decode(data), (w, h), "bicubic")
        assert np.array_equal(_tile(sheet, tile["box"]), up)
        assert tile["psnr"] > 0 and 0 <= tile["st_lpips_alex"] < 1
    printed = capsys.readouterr().out
    assert f"| {gsc['tile']} | {gsc['bytes']} |" in printed


@pytest.mark.parametrize("args, message", [
    ([], "give --channels C or --max-bpp B"),
    (["--channels", "1", "--crop", "700,400,100,200"], "--crop 700,400,100,200 is not inside the 768×512 image"),
    (["--channels", "1", "--crop", "a,b"], "--crop must be X,Y,W,H"),
    (["--channels", "1", "--codecs", "webp,heic"], "unknown classical codec 'heic'"),
    (["--channels", "1", "--select", "psnr,flip"], "--select takes one metric"),
])
def test_compare_bad_options_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "s.png"
    assert main(["compare", str(KODAK / "kodim23.png"), "-o", str(out), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
