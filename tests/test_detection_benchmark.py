"""benchmarks/detection.py end to end on two small images: gsc (two selections) and WebP, then a resume."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
BSDS_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "bsds500" / "test"
pytestmark = pytest.mark.skipif(not BSDS_TEST.is_dir(), reason="../shared/data/bsds500 not present")


@pytest.fixture()
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("206062.jpg", "15011.jpg"):  # people (and a horse), found at ≥ 0.95 by YOLOv3-tiny
        with Image.open(BSDS_TEST / name) as im:
            im.convert("RGB").resize((240, 160), Image.LANCZOS).save(folder / f"{Path(name).stem}.png")
    return folder


def test_benchmark_writes_results_and_resumes(data, tmp_path, monkeypatch):
    import detection

    from gsc.eval.classical import run_bench

    # WebP's choices from a bench-classical bundle, as the documented command uses them
    bundle = run_bench(data, ["webp"], [0.05], tmp_path / "classical.json", progress=False)
    out = tmp_path / "det.json"
    argv = [str(data), "--targets", "0.05", "--codecs", "gsc,gsc:det-ssim,webp", "--classical",
            str(tmp_path / "classical.json"), "-o", str(out), "--doc", str(tmp_path / "results.md")]
    assert detection.main(argv) == 0
    obj = json.loads(out.read_text())
    assert [c["name"] for c in obj["curves"]] == ["gsc lite", "gsc lite (det-ssim)", "WebP"]
    assert obj["images"] == 2 and obj["images_with_objects"] == 2
    for c in obj["curves"]:
        res = c["results"]
        assert len(res["bpp"]) == 1 and res["bpp"][0] <= 0.05
        assert 0.0 <= res["yolo-map50"][0] <= 1.0 and 0.0 <= res["yolo-map50-image-mean"][0] <= 1.0
    recs = obj["per_image"]
    assert len(recs) == 6 and all(r["fit"] and r["bytes"] * 8 <= 0.05 * 240 * 160 for r in recs)
    webp = [r for r in recs if r["codec"] == "webp"]
    # the file rebuilt from the bundle's (size, quality) is the bundle's file
    assert all(r["source"] == "bench-classical bundle, rebuilt" for r in webp)
    assert sorted(r["psnr"] for r in webp) == pytest.approx(sorted(r["psnr"] for r in bundle["per_image"]))
    gsc = [r for r in recs if r["codec"].startswith("gsc")]
    assert all(r["channels"] >= 1 and len(r["indices"]) == r["channels"] for r in gsc)
    table = (tmp_path / "det.md").read_text()
    assert "YOLO mAP@.5 (set)" in table and "| gsc lite (det-ssim) | 0.05 | 2/2 |" in table
    assert "- det-ssim vs ordered at 0.05 bpp: other channels on " in table  # plain gsc: the preset's selection
    assert "<!-- gsc:detection-det -->" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "det.png").stat().st_size > 0

    # a second run reads every record from the cache: nothing is encoded, decoded or searched again
    def fail(*a, **k):
        raise AssertionError("record recomputed")

    monkeypatch.setattr(detection, "gsc_record", fail)
    monkeypatch.setattr(detection, "classical_record", fail)
    assert detection.main(argv) == 0
    assert json.loads(out.read_text())["curves"] == obj["curves"]

    # bench-classical's cache folder serves as well as its bundle (a run in progress fills it)
    monkeypatch.undo()
    assert detection.main([str(data), "--targets", "0.05", "--codecs", "webp", "--classical",
                           str(tmp_path / "classical.cache"), "-o", str(tmp_path / "from_cache.json")]) == 0
    again = json.loads((tmp_path / "from_cache.json").read_text())
    assert all(r["source"] == "bench-classical bundle, rebuilt" for r in again["per_image"])
    assert again["curves"][0]["results"] == obj["curves"][2]["results"]


def test_benchmark_rejects_unknown_codecs(data, tmp_path):
    import detection

    from gsc.errors import GSCError

    with pytest.raises(GSCError, match="unknown selection 'best'"):
        detection.main([str(data), "--codecs", "gsc:best", "-o", str(tmp_path / "x.json")])
    with pytest.raises(GSCError, match="unknown codec 'png'"):
        detection.main([str(data), "--codecs", "png", "-o", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
