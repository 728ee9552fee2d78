import json
import math

import pytest

from gsc.errors import GSCError
from gsc.eval.plot import plot_files
from gsc.eval.results import RecordCache, curve, load_curves, markdown_table, update_section, write_json

POINTS = [{"bpp": 0.0049, "psnr": 20.5, "ms_ssim": 0.61, "channels": 1},
          {"bpp": 0.0098, "psnr": 21.7, "ms_ssim": 0.68, "channels": 2}]


def test_curve_json_round_trip(tmp_path):
    c = curve("gsc lite", "test run", POINTS, kind="gsc", per_image=[{"image": "a.png", "psnr": math.inf}])
    assert c["results"] == {"bpp": [0.0049, 0.0098], "psnr-rgb": [20.5, 21.7], "ms-ssim-rgb": [0.61, 0.68]}
    path = tmp_path / "r.json"
    write_json(path, c)
    raw = json.loads(path.read_text())
    assert raw["per_image"][0]["psnr"] is None  # JSON has no inf: written as null, never as a number
    (back,) = load_curves(path)
    assert back["name"] == "gsc lite" and back["results"] == c["results"]


def test_bundle_round_trip(tmp_path):
    bundle = {"curves": [curve("WebP", "w", POINTS), curve("AVIF", "a", POINTS[:1])], "missing": []}
    write_json(tmp_path / "b.json", bundle)
    curves = load_curves(tmp_path / "b.json")
    assert [c["name"] for c in curves] == ["WebP", "AVIF"]
    assert curves[1]["results"]["bpp"] == [0.0049]


def test_bad_results_files_raise_one_line_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "results": {"bpp": [0.1, 0.2], "psnr-rgb": [20.0]}}))
    with pytest.raises(GSCError, match="psnr-rgb"):
        load_curves(bad)
    bad.write_text("{not json")
    with pytest.raises(GSCError, match="not valid JSON"):
        load_curves(bad)
    with pytest.raises(GSCError, match="no such results file"):
        load_curves(tmp_path / "missing.json")


def test_compressai_plot_tool_reads_our_files(tmp_path):
    from gsc.latent._compressai import import_compressai

    import_compressai()
    from compressai.utils.plot.__main__ import main, parse_json_file

    path = tmp_path / "gsc.json"
    write_json(path, curve("gsc lite", "d", POINTS, per_image=[]))
    parsed = parse_json_file(path, "psnr")
    assert parsed["name"] == "gsc lite" and parsed["xs"] == [0.0049, 0.0098] and parsed["ys"] == [20.5, 21.7]
    parsed = parse_json_file(path, "ms-ssim")  # CompressAI converts MS-SSIM to dB
    assert parsed["ys"][1] == pytest.approx(-10 * math.log10(1 - 0.68))
    other = tmp_path / "webp.json"
    write_json(other, curve("WebP", "d", POINTS[1:]))
    main(["-f", str(path), str(other), "-o", str(tmp_path / "cai.png")])
    assert (tmp_path / "cai.png").stat().st_size > 1000


def test_plot_several_files(tmp_path):
    write_json(tmp_path / "a.json", curve("gsc lite", "d", POINTS))
    write_json(tmp_path / "b.json", {"curves": [curve("WebP", "w", POINTS[1:], kind="classical")]})
    curves = plot_files([tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "rd.png")
    assert len(curves) == 2
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_update_section_replaces_only_its_block(tmp_path):
    md = tmp_path / "results.md"
    md.write_text("# Results\n\nintro\n")
    update_section(md, "one", "first", title="One")
    update_section(md, "two", "second")
    update_section(md, "one", "FIRST again")
    text = md.read_text()
    assert "intro" in text and "FIRST again" in text and "second" in text and "first\n" not in text
    assert text.count("<!-- gsc:one -->") == 1 and text.count("## One") == 1


def test_record_cache(tmp_path):
    cache = RecordCache(tmp_path / "c.cache")
    key = {"image": "kodim01.png", "channels": 2, "preset": "lite"}
    assert cache.get(key) is None
    cache.put(key, {"psnr": 21.0}, b"\xb1stream")
    assert cache.get(key)["psnr"] == 21.0 and cache.stream(key) == b"\xb1stream"
    assert cache.get({**key, "channels": 4}) is None


def test_markdown_table():
    text = markdown_table(["C", "PSNR"], [[1, 21.456], [2, None]])
    assert text.splitlines() == ["| C | PSNR |", "|---|---|", "| 1 | 21.46 |", "| 2 | – |"]
