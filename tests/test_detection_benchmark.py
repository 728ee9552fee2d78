"""benchmarks/detection.py (a gsc bench configuration) end to end on two small images: gsc (two selections,
the flux-tiny preset: wiring only) and WebP rebuilt from a bench-classical run, then a resume."""

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import SHARED_DATA

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
BSDS_TEST = SHARED_DATA / "bsds500" / "test"
pytestmark = pytest.mark.shared_data("bsds500/test")


@pytest.fixture()
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("206062.jpg", "15011.jpg"):  # people (and a horse), found at ≥ 0.95 by YOLOv3-tiny
        with Image.open(BSDS_TEST / name) as im:
            im.convert("RGB").resize((240, 160), Image.LANCZOS).save(folder / f"{Path(name).stem}.png")
    (folder / "captions.json").write_text(json.dumps({"206062.png": "people", "15011.png": "a horse"}))
    return folder


@pytest.mark.slow   # the benchmark end to end on real images
def test_benchmark_writes_results_and_resumes(data, tmp_path, monkeypatch, one_thread):
    import detection

    from gsc.cli import main as gsc_main
    from gsc.eval import codecs

    assert gsc_main(["bench-classical", str(data), "--codecs", "webp", "--target-bpp", "0.05", "--metrics",
                     "psnr-rgb", "-o", str(tmp_path / "classical.json")]) == 0
    out = tmp_path / "det.json"
    argv = [str(data), "--targets", "0.05", "--codecs", "gsc,gsc:det-ssim,webp", "--preset", "flux-tiny",
            "--channels", "2", "--classical", str(tmp_path / "classical.json"), "-o", str(out),
            "--doc", str(tmp_path / "results.md")]
    assert detection.main(argv) == 0
    obj = json.loads(out.read_text())
    assert [c["name"] for c in obj["curves"]] == ["gsc flux-tiny (C = 2)", "gsc flux-tiny (det-ssim, C = 2)", "WebP"]
    for c in obj["curves"]:
        res = c["results"]
        assert len(res["bpp"]) == 1 and res["bpp"][0] <= 0.05
        assert 0.0 <= res["yolo-map50"][0] <= 1.0 and 0.0 <= res["yolo-map50-image-mean"][0] <= 1.0
    recs = obj["per_image"]
    assert len(recs) == 6 and all(r["fit"] and r["bytes"] * 8 <= 0.05 * 240 * 160 for r in recs)
    webp = [r for r in recs if r["codec"] == "webp"]
    classical = json.loads((tmp_path / "classical.json").read_text())["per_image"]
    assert all(r["source"] == "rebuilt from an earlier run's choice" for r in webp)
    assert sorted(r["psnr"] for r in webp) == pytest.approx(sorted(r["psnr"] for r in classical))
    assert all(r["channels"] == 2 and len(r["indices"]) == 2 for r in recs if r["codec"].startswith("gsc"))
    table = (tmp_path / "det.md").read_text()
    assert "YOLOv3-tiny mAP@.5 (set) ↑" in table and "| gsc flux-tiny (det-ssim, C = 2) | 0.05 | 2/2 |" in table
    assert "- det-ssim vs ssim at 0.05 bpp: other channels on " in table
    assert "<!-- gsc:detection-det -->" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "det.png").stat().st_size > 0

    # a second run reads every record from the cache: nothing is encoded again
    def fail(*a, **k):
        raise AssertionError("record recomputed")

    monkeypatch.setattr(codecs.GscBench, "encode", fail)
    monkeypatch.setattr(codecs.ClassicalBench, "encode", fail)
    assert detection.main(argv) == 0
    assert json.loads(out.read_text())["curves"] == obj["curves"]


def test_benchmark_rejects_unknown_codecs(data, tmp_path):
    import detection

    from gsc.errors import GSCError

    with pytest.raises(GSCError, match="unknown selection 'best'"):
        detection.main([str(data), "--codecs", "gsc:best", "-o", str(tmp_path / "x.json")])
    with pytest.raises(GSCError, match="unknown classical codec 'png'"):
        detection.main([str(data), "--codecs", "png", "-o", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
