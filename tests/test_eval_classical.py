import json
import math

import numpy as np
import pytest
from PIL import Image

from gsc.errors import GSCError
from gsc.eval import classical
from gsc.eval.bench import Bench
from gsc.eval.classical import (Candidate, ClassicalCodec, SearchGrid, best_quality_that_fits, get_codec,
                                parse_codecs, parse_targets, pick, psnr_u8, resize, search)
from gsc.eval.codecs import classical_codecs

from conftest import SHARED_DATA


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


# --------------------------------------------------------------------------------------------------
# --select: the setting best on another metric

BSDS_VAL = SHARED_DATA / "bsds500" / "val"


def _cands(psnrs, nbytes=None):
    return [Candidate((16 + i, 16 + i), 50, b"", None, p, nbytes=(nbytes or [100] * len(psnrs))[i])
            for i, p in enumerate(psnrs)]


def test_pick_walk_finds_the_optimum_and_scores_few():
    n = 60
    cands = _cands([20 + 0.01 * i for i in range(n)])  # best PSNR: the largest size
    calls = []

    def value(i):  # a lower-is-better metric with its optimum at 23
        calls.append(i)
        return abs(i - 23) / 10

    assert pick(cands, "st_lpips_alex", value) == 23
    assert len(set(calls)) < n / 3 and n - 1 in calls  # the best-PSNR candidate is always scored
    assert pick(cands, "st_lpips_alex", value, exhaustive=True) == 23
    # PSNR is known for every candidate: its pick is exact; a tie goes to the smaller file
    tied = _cands([20, 21, 21, 19], nbytes=[90, 99, 95, 80])
    assert pick(tied, "psnr", lambda i: tied[i].psnr) == 2
    # a metric that scores None (image too small) never wins over a real value
    assert pick(cands, "haarpsi", lambda i: None if i % 2 else i / 100) == 58


def test_search_state_round_trips_through_the_cache():
    image = _scene(3)
    h, w = image.shape[:2]
    codec = get_codec("webp")
    state = classical.SearchState.run(codec, image, math.floor(0.05 * h * w / 8), SearchGrid(16, 4))
    assert state.cands
    back = classical.SearchState.from_json(codec, image, json.loads(json.dumps(state.to_json())))
    for a, b in zip(state.cands, back.cands, strict=True):
        assert b.recon is None and b.nbytes == a.nbytes
    i = len(back.cands) // 2
    c = back.materialize(i)
    assert c.data == state.cands[i].data and np.array_equal(c.recon, state.cands[i].recon)


@pytest.mark.slow   # a search per metric on real photos
@pytest.mark.shared_data("bsds500/val")
def test_select_st_lpips_is_never_worse_than_the_best_psnr_pick(tmp_path, monkeypatch, one_thread):
    """gsc bench --select psnr,st-lpips on real photos: per image, the ST-LPIPS pick scores ≤ the PSNR pick."""
    images = sorted(BSDS_VAL.glob("*.jpg"))[:2]
    out = tmp_path / "sel.json"
    grid = SearchGrid(32, 8)
    bench = Bench(classical_codecs(["webp"], ["psnr", "st_lpips_alex"], grid), [0.01], ["psnr", "st_lpips_alex"])
    bundle = bench.run(images, out, progress=False)
    recs = {(r["image"], r["codec"]): r for r in bundle["per_image"]}
    assert len(recs) == 4
    for name in {r["image"] for r in bundle["per_image"]}:
        by_psnr, by_st = recs[(name, "webp")], recs[(name, "webp:st-lpips-alex")]
        assert by_st["st_lpips_alex"] <= by_psnr["st_lpips_alex"]
        assert by_psnr["psnr"] >= by_st["psnr"]
        assert by_st["bytes"] <= by_st["budget_bytes"] and by_st["scored"] < by_st["candidates"]
    assert [c["name"] for c in bundle["curves"]] == ["WebP", "WebP, best ST-LPIPS (alex)"]
    assert out.with_name("sel.webp.st-lpips-alex.json").exists() and out.with_name("sel.webp.json").exists()
    assert "ST-LPIPS (alex) ↓" in out.with_suffix(".md").read_text()

    # another selection and metric later: the cached candidates and scores are reused, nothing is searched again
    def boom(*a, **k):
        raise AssertionError("the search must come from the cache")

    monkeypatch.setattr(classical, "candidates", boom)
    metrics = ["psnr", "st_lpips_alex", "haarpsi"]
    again = Bench(classical_codecs(["webp"], metrics, grid), [0.01], metrics).run(images, out, progress=False)
    assert len(again["curves"]) == 3
    for r in again["per_image"]:
        if r["codec"] != "webp:haarpsi":
            assert r["st_lpips_alex"] == pytest.approx(recs[(r["image"], r["codec"])]["st_lpips_alex"])


def test_select_needs_a_metric_that_runs(tmp_path, monkeypatch, capsys):
    from gsc.cli import main
    from gsc.eval import metrics

    monkeypatch.setattr(metrics, "_installed", lambda module: module != "stlpips_pytorch")
    Image.fromarray(_scene(4)).save(tmp_path / "a.png")
    out = tmp_path / "o.json"
    assert main(["bench-classical", str(tmp_path), "--select", "st-lpips", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ST-LPIPS unavailable" in err and "Traceback" not in err
    assert not out.exists()
