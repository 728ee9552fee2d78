import json
import math

import numpy as np
import pytest
from PIL import Image

from gsc.errors import GSCError
from gsc.eval import classical
from gsc.eval.classical import (ClassicalCodec, SearchGrid, best_quality_that_fits, get_codec, parse_codecs,
                                parse_targets, psnr_u8, resize, run_bench, search)
from gsc.eval.results import load_curves


def _scene(seed: int, h: int = 176, w: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((h // 16, w // 16, 3))
    img = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), np.float64)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_grid_covers_full_size_down_to_one_32nd():
    sizes = SearchGrid(32, 16).sizes(768, 512)
    assert sizes[0] == (24, 16) and sizes[-1] == (768, 512)
    widths = [w for w, _ in sizes]
    assert widths == sorted(widths) and len(sizes) == 81
    # small steps: neighbouring widths differ by about 2^(1/16) ≈ 4.4 %
    assert max(b / a for a, b in zip(widths, widths[1:])) < 1.1


def _fake_codec(sizes: dict[int, int]) -> ClassicalCodec:
    return ClassicalCodec("fake", "Fake", (0, max(sizes)), lambda a, q: b"x" * sizes[q], lambda b: None)


def test_binary_search_finds_highest_fitting_quality():
    sizes = {q: 100 + 10 * q for q in range(101)}
    q, data = best_quality_that_fits(_fake_codec(sizes), None, 555)
    assert q == 45 and len(data) == 550
    assert best_quality_that_fits(_fake_codec(sizes), None, 99) is None
    # a size that dips just above the binary search's answer is still found
    bumpy = dict(sizes)
    bumpy[46] = 560
    bumpy[47] = 554
    assert best_quality_that_fits(_fake_codec(bumpy), None, 555)[0] == 47


@pytest.mark.parametrize("name", ["webp", "jxl", "avif", "jpeg"])
def test_codecs_round_trip_and_grow_with_quality(name):
    codec = get_codec(name)
    a = _scene(0, 64, 96)
    lo, hi = codec.qualities
    small, big = codec.encode(a, lo), codec.encode(a, min(hi, 90))
    assert len(small) < len(big)
    back = codec.decode(big)
    assert back.shape == a.shape and back.dtype == np.uint8
    assert psnr_u8(back, a) > psnr_u8(codec.decode(small), a)


def test_search_fits_budget_and_reports_real_psnr():
    image = _scene(1)
    h, w = image.shape[:2]
    budget = math.floor(0.05 * h * w / 8)
    codec = get_codec("webp")
    found = search(codec, image, budget)
    assert found is not None and len(found.data) <= budget
    assert found.size[0] < w  # a full-size file cannot fit this budget
    assert len(codec.encode(image, 0)) > budget
    recon = resize(codec.decode(found.data), (w, h), "bicubic")
    assert psnr_u8(recon, image) == pytest.approx(found.psnr)
    # the best over the grid beats (or ties) the smallest size at its best quality
    smallest = SearchGrid().sizes(w, h)[0]
    q, data = best_quality_that_fits(codec, resize(image, smallest, "lanczos"), budget)
    assert found.psnr >= psnr_u8(resize(codec.decode(data), (w, h), "bicubic"), image)


def test_jpeg_reports_no_point_when_nothing_fits():
    image = _scene(2)
    assert search(get_codec("jpeg"), image, 200) is None  # JPEG's own header is bigger than 200 bytes


def test_parse_options():
    assert parse_targets("0.01, 0.005") == [0.005, 0.01]
    with pytest.raises(GSCError, match="target-bpp"):
        parse_targets("abc")
    assert parse_codecs("webp,jxl") == ["webp", "jxl"]
    with pytest.raises(GSCError, match="unknown classical codec 'heic'"):
        parse_codecs("webp,heic")


def test_run_bench_writes_compressai_files_and_resumes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(_scene(10 + i)).save(data / f"img{i}.png")
    out = tmp_path / "res" / "classical.json"
    out.parent.mkdir()
    grid = SearchGrid(16, 4)
    bundle = run_bench(data, ["webp", "jpeg"], [0.02, 0.2], out, grid=grid, progress=False)
    recs = bundle["per_image"]
    assert len(recs) == 8
    for r in recs:
        if r["fit"]:
            assert r["bytes"] <= r["budget_bytes"] and r["bpp"] <= r["target_bpp"]
            assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (r["width"] * r["height"]))
    webp = next(c for c in bundle["curves"] if c["codec"] == "webp")
    assert webp["results"]["bpp"] == pytest.approx(
        [np.mean([r["bpp"] for r in recs if r["codec"] == "webp" and r["target_bpp"] == t]) for t in (0.02, 0.2)])
    # JPEG's header alone exceeds 0.02 bpp of a 256×176 image: reported missing, not averaged
    assert {"codec": "jpeg", "target_bpp": 0.02, "images_fit": 0, "images": 2} in bundle["missing"]
    assert load_curves(out)[0]["name"] == "WebP"
    per_codec = load_curves(out.with_name("classical.jpeg.json"))
    assert per_codec[0]["results"]["bpp"] == [pytest.approx(
        np.mean([r["bpp"] for r in recs if r["codec"] == "jpeg" and r["target_bpp"] == 0.2]))]
    assert "no point" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").exists()

    def boom(*a, **k):
        raise AssertionError("resume must not measure again")

    monkeypatch.setattr(classical, "measure", boom)
    again = run_bench(data, ["webp", "jpeg"], [0.02, 0.2], out, grid=grid, resume=True, progress=False)
    assert json.dumps(again["curves"]) == json.dumps(bundle["curves"])
