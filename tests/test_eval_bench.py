"""The bench layer: codecs behind one interface, the driver's cache, summary, table, JSON and plot."""

import json

import numpy as np
import pytest
from PIL import Image

from gsc.errors import GSCError
from gsc.eval import classical
from gsc.eval.bench import Bench
from gsc.eval.classical import SearchGrid
from gsc.eval.codecs import ClassicalBench, NoFit, Picture, classical_codecs, jsonable, parse_codec_list
from gsc.eval.results import load_curves
from test_eval_classical import _scene

GRID = SearchGrid(16, 4)


@pytest.fixture()
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_scene(10 + i)).save(folder / f"img{i}.png")
    return folder


def test_classical_codec_interface_fits_the_budget_and_decodes_full_size():
    codec = ClassicalBench("webp", grid=GRID)
    pic = Picture("a.png", _scene(1))
    data = codec.encode(pic, 300)
    assert len(data) <= 300
    info = codec.info(data)
    assert info["scaled_width"] < 256 and 0 <= info["quality"] <= 100
    recon = codec.decode(data, pic.size)
    assert recon.shape == pic.pixels.shape and recon.dtype == np.uint8
    with pytest.raises(NoFit):
        ClassicalBench("jpeg", grid=GRID).encode(pic, 100)  # JPEG's headers alone are larger


def test_bench_writes_compressai_files_missing_points_and_resumes(data, tmp_path, monkeypatch):
    bench = Bench(classical_codecs(["webp", "jpeg"], ["psnr"], GRID), [0.02, 0.2], ["psnr", "ms_ssim"])
    out = tmp_path / "res" / "c.json"
    bundle = bench.run(sorted(data.glob("*.png")), out, progress=False)
    recs = bundle["per_image"]
    assert len(recs) == 8
    for r in recs:
        if r["fit"]:
            assert r["bytes"] <= r["budget_bytes"] and r["bpp"] == pytest.approx(r["bytes"] * 8 / (256 * 176))
    webp = next(c for c in bundle["curves"] if c["codec"] == "webp")
    assert webp["results"]["bpp"] == pytest.approx(
        [np.mean([r["bpp"] for r in recs if r["codec"] == "webp" and r["target_bpp"] == t]) for t in (0.02, 0.2)])
    assert {"codec": "jpeg", "target_bpp": 0.02, "images_fit": 0, "images": 2} in bundle["missing"]
    assert "| JPEG | 0.02 | 0/2 | no point |" in out.with_suffix(".md").read_text()
    assert load_curves(out)[0]["name"] == "WebP" and out.with_suffix(".png").stat().st_size > 0
    assert load_curves(out.with_name("c.jpeg.json"))[0]["results"]["bpp"] == [pytest.approx(
        np.mean([r["bpp"] for r in recs if r["codec"] == "jpeg" and r["target_bpp"] == 0.2]))]

    # a second run reads every record: no codec encodes
    def boom(*a, **k):
        raise AssertionError("a cached record was measured again")

    monkeypatch.setattr(ClassicalBench, "encode", boom)
    again = bench.run(sorted(data.glob("*.png")), out, progress=False)
    assert json.dumps(again["curves"]) == json.dumps(bundle["curves"])
    # a metric the records lack: those records are measured again
    with pytest.raises(AssertionError, match="measured again"):
        Bench(bench.codecs, bench.targets, ["psnr", "colour_drift"]).run(sorted(data.glob("*.png")), out,
                                                                        progress=False)


class Fake:
    """A codec whose key the test changes, as retrained weights change gsc's."""

    kind, label, name = "gsc", "Fake", "fake"

    def __init__(self, version):
        self.version, self.calls = version, 0

    def key(self):
        return {"weights": self.version}

    def describe(self):
        return "fake"

    def encode(self, picture, budget):
        self.calls += 1
        return bytes(min(budget, 50))

    def decode(self, data, size):
        return np.full((size[1], size[0], 3), 128, np.uint8)

    def info(self, data):
        return {"step": {"luma": 1.5, "chroma": (2, 3)}}


def test_cache_follows_the_codec_key_and_matched_budgets(data, tmp_path):
    images = sorted(data.glob("*.png"))
    old = Fake("a")
    Bench([old], [0.01], ["psnr"]).run(images, tmp_path / "f.json", progress=False)
    assert old.calls == 2
    Bench([old], [0.01], ["psnr"]).run(images, tmp_path / "f.json", progress=False)
    assert old.calls == 2
    new = Fake("b")  # other weights: nothing is reused
    bundle = Bench([new], [0.01], ["psnr"]).run(images, tmp_path / "f.json", progress=False)
    assert new.calls == 2
    assert bundle["per_image"][0]["step"] == {"luma": 1.5, "chroma": [2, 3]}  # whatever info reports, kept
    # WebP at ≤ the fake's bytes (50) on each image
    webp = ClassicalBench("webp", grid=GRID)
    b = Bench([new, webp], [0.01], ["psnr"], matched={"webp": "fake"}).run(images, tmp_path / "m.json",
                                                                          progress=False)
    assert all(r["budget_bytes"] == 50 for r in b["per_image"] if r["codec"] == "webp")
    with pytest.raises(GSCError, match="earlier"):
        Bench([webp, new], [0.01], ["psnr"], matched={"webp": "fake"})


def test_a_pick_per_metric_shares_the_search_and_is_scored_on_its_metric(data, tmp_path, monkeypatch):
    images = sorted(data.glob("*.png"))
    picks = classical_codecs(["webp"], ["psnr", "colour_drift"], GRID)
    bench = Bench(picks, [0.05], ["psnr", "colour_drift"], scored_on={"webp:colour-drift": ["colour_drift"]})
    bundle = bench.run(images, tmp_path / "p.json", progress=False)
    by = {(r["codec"], r["image"]): r for r in bundle["per_image"]}
    for i in ("img0.png", "img1.png"):
        psnr, drift = by[("webp", i)], by[("webp:colour-drift", i)]
        assert "psnr" not in drift and "colour_drift" in psnr  # the pick is scored on its own metric only
        assert drift["colour_drift"] <= psnr["colour_drift"]  # picked on drift: never worse than PSNR's pick
    searches = [f for f in (tmp_path / "p.cache").glob("*.json") if json.loads(f.read_text())["key"].get("kind")]
    assert len(searches) == 2  # one search per image, both picks read it
    curve = next(c for c in bundle["curves"] if c["codec"] == "webp:colour-drift")
    assert curve["results"]["psnr-rgb"] == [None] and curve["points"][0]["colour_drift"] > 0
    # records scored on every metric (an earlier run's) still make a point of the pick's own metric only
    everything = Bench(picks, [0.05], ["psnr", "colour_drift"]).run(images, tmp_path / "q.json", progress=False)
    again = bench.summarize(everything["per_image"], 2)
    assert "psnr" in everything["curves"][1]["points"][0] and "psnr" not in again["curves"][1]["points"][0]
    monkeypatch.setattr(ClassicalBench, "encode", lambda *a: pytest.fail("a cached record was measured again"))
    assert bench.run(images, tmp_path / "p.json", progress=False)["per_image"] == bundle["per_image"]
    with pytest.raises(GSCError, match="scored_on"):
        Bench(picks, [0.05], ["psnr"], scored_on={"webp:colour-drift": ["colour_drift"]})


def test_parse_codec_list_and_jsonable():
    names = [c.name for c in parse_codec_list("webp,jxl", ["psnr", "st_lpips_alex"], GRID)]
    assert names == ["webp", "webp:st-lpips-alex", "jxl", "jxl:st-lpips-alex"]
    with pytest.raises(GSCError, match="unknown classical codec 'png'"):
        parse_codec_list("png", ["psnr"], GRID)
    with pytest.raises(GSCError, match="unknown codec 'webp:x'"):
        parse_codec_list("webp:x", ["psnr"], GRID)
    assert jsonable({"s": (1, np.float32(2.5))}) == {"s": [1, 2.5]}
    assert classical  # the search module stays the classical codecs' home


def test_gsc_plot_draws_every_quantity_of_a_bench_json(data, tmp_path):
    from gsc.cli import main
    from gsc.eval.plot import panels_for

    bench = Bench(classical_codecs(["webp"], ["psnr"], GRID), [0.2], ["psnr", "colour_drift"])
    bench.run(sorted(data.glob("*.png")), tmp_path / "b.json", progress=False)
    curves = load_curves(tmp_path / "b.json")
    curves[0]["results"]["yolo-map50"] = [0.5]
    curves[0]["results"]["new-measure"] = [1.0]
    keys = [k for k, _ in panels_for(curves)]
    assert keys == ["psnr-rgb", "ms-ssim-rgb", "colour-drift", "yolo-map50", "new-measure"]
    assert main(["plot", str(tmp_path / "b.json"), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_code_digest_follows_the_codec_sources_only(tmp_path):
    """A changed sender or receiver source makes new gsc records; eval, train, testing and the CLI do not."""
    from gsc.eval.codecs import GscBench, code_digest, source_digest

    for rel in ("latent/lite.py", "caption/data/caption_model.json.gz", "eval/bench.py", "train/lite.py", "cli.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a")
    before = source_digest(tmp_path)
    for rel in ("eval/bench.py", "train/lite.py", "cli.py"):
        (tmp_path / rel).write_text("b")
    assert source_digest(tmp_path) == before
    (tmp_path / "caption/data/caption_model.json.gz").write_text("b")
    changed = source_digest(tmp_path)
    (tmp_path / "latent/lite.py").write_text("b")
    assert len({before, changed, source_digest(tmp_path)}) == 3
    assert GscBench("lite").key()["code"] == code_digest()


def test_the_legend_names_curves_drawn_on_some_panels_only(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from gsc.eval.plot import plot_rd

    curves = [{"name": "WebP", "kind": "classical", "results": {"bpp": [0.01], "psnr-rgb": [20.0], "flip": [0.3]}},
              {"name": "WebP (best FLIP)", "kind": "classical", "select": "flip",
               "results": {"bpp": [0.01], "psnr-rgb": [None], "flip": [0.2]}}]
    seen = []
    monkeypatch.setattr(Figure, "legend", lambda self, handles, labels, **k: seen.extend(labels))
    plot_rd(curves, tmp_path / "l.png")
    assert seen == ["WebP", "WebP (best FLIP)"]
