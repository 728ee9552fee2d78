"""benchmarks/lite_kodak.py as a gsc bench configuration: WebP's pick per metric, wins, targets, the command."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import lite_kodak  # noqa: E402

METRICS = [m for m, _, _ in lite_kodak.COLUMNS]
# one WebP curve per metric picked on, each with its own value on every metric
PICKS = {"webp": 1.0, "webp:ms-ssim-rgb": 2.0, "webp:psnr-chroma": 3.0, "webp:colour-drift": 4.0,
         "webp:st-lpips-alex": 5.0, "webp:flip": 6.0}


def _rec(codec, image, value, fit=True):
    r = {"codec": codec, "target_bpp": 0.01, "image": image, "fit": fit}
    if fit:
        r.update({m: value for m in METRICS}, bytes=100, bpp=0.009, channels=2, encode_s=1.0, decode_s=2.0,
                 step={"luma": 2.0, "chroma": [3.0, 4.0]})
    return r


def _bundle(gsc_values):
    recs = [_rec("gsc:lite:ordered", i, v) for i, v in gsc_values.items()]
    recs += [_rec(c, i, v) for c, v in PICKS.items() for i in gsc_values]
    recs.append(_rec("gsc:lite:ordered", "z", None, fit=False))
    recs += [_rec(c, "z", None, fit=False) for c in PICKS]
    return {"per_image": recs}


def test_the_six_picks_are_one_classical_bench_each_matched_to_gsc():
    main, _ = lite_kodak.benches("lite", [0.01], {"a": "x", "b": "y"}, ["a", "b"])
    assert [c.name for c in main.codecs[1:]] == list(PICKS)
    assert [c.select for c in main.codecs[1:]] == lite_kodak.WEBP_PICK
    assert set(main.matched.values()) == {main.codecs[0].name}


def test_each_metric_meets_webps_pick_on_that_metric():
    (row,) = lite_kodak.rows(_bundle({"a": 3.5, "b": 3.5}), "gsc:lite:ordered", [0.01])
    assert row["images"] == 2 and row["of"] == 3  # the image gsc cannot fit is counted, not averaged
    assert [row["webp"][m] for m in lite_kodak.WEBP_PICK] == list(PICKS.values())
    assert row["webp"]["haarpsi"] == row["webp"]["ms_gmsd"] == 1.0  # PSNR's pick for the rest
    # gsc 3.5 against each pick: higher is better for PSNR, MS-SSIM, chroma; lower for drift, ST-LPIPS, FLIP
    assert row["wins"] == {"psnr": 2, "ms_ssim": 2, "psnr_chroma": 2, "colour_drift": 2, "st_lpips_alex": 2,
                           "flip": 2, "haarpsi": 2, "ms_gmsd": 0}
    table = "\n".join(lite_kodak.main_table([row]))
    assert "| 0.01 | 2/3 | 0.0090 (0.0090) | 2.0 | 3.50 / 1.00 | 3.5000 / 2.0000 |" in table
    assert table.endswith("| 2/2 |") and "enc s" not in table


def test_targets_against_webp_per_budget():
    (a,) = lite_kodak.rows(_bundle({"a": 3.5, "b": 3.5}), "gsc:lite:ordered", [0.01])
    b = {**a, "budget": 0.02, "gsc": {**a["gsc"], "psnr": 3.7}, "wins": {**a["wins"], "st_lpips_alex": 1}}
    _, _, columns, _, first, second = lite_kodak.targets_table([a, b])
    assert columns.split(" | ")[1:len(lite_kodak.TARGETS) + 1] == [h for _, h, _, _ in lite_kodak.TARGETS]
    # PSNR +2.5 ✓, MS-SSIM +1.5 ✓, chroma +0.5 ✓, drift −0.5 ✓ (lower), FLIP −2.5 ✓, ST-LPIPS 2/2 ✓
    assert first == "| 0.01 | ✓ +2.50 | ✓ +1.5000 | ✓ +0.50 | ✓ -0.50 | ✓ -2.5000 | ✓ 2/2 | – |"
    assert second.endswith("| ✗ 1/2 | ✗ +0.20 |")


def test_the_command_beside_the_table_reproduces_the_run():
    ap = lite_kodak.parser()
    root = lite_kodak.ROOT
    args = ap.parse_args(["--data", str(root.parent / "shared/data/bsds500/test"), "--captions",
                          str(root / "data/captions/bsds500_test.json"), "--limit", "8", "--budgets", "0.005,0.02",
                          "--no-captions-check", "--cli", "0"])
    assert lite_kodak.command_line(args, ap) == (
        "python benchmarks/lite_kodak.py --data ../shared/data/bsds500/test --captions data/captions/bsds500_test.json"
        " --budgets 0.005,0.02 --limit 8 --no-captions-check --cli 0")
    assert lite_kodak.command_line(ap.parse_args([]), ap) == "python benchmarks/lite_kodak.py"


def test_an_earlier_run_seeds_gsc_and_its_webp_choices_are_rebuilt_not_searched(tmp_path, monkeypatch):
    import json

    from gsc.eval.classical import SearchGrid
    from gsc.eval.codecs import ClassicalBench, NoFit, Picture
    from test_eval_classical import _scene

    pic, grid = Picture("a.png", _scene(3)), SearchGrid(16, 4)
    searched = ClassicalBench("webp", grid=grid)
    data = searched.encode(pic, 300)
    info = searched.info(data)
    best = {"size": [info["scaled_width"], info["scaled_height"]], "quality": info["quality"], "bytes": len(data)}
    f = tmp_path / "old.json"
    gsc = {"bpp": 0.01, "encode_s": 1.0, "decode_s": 2.0, "info": {"scale": 8.0}, "gsc": {"psnr": 20.5}}
    f.write_text(json.dumps({"a.png@0.01": {**gsc, "bytes": 300, "webp_best": {"psnr": best, "flip": None}},
                             "b.png@0.0075": {**gsc, "bytes": 280, "webp_best": {"psnr": best}}}))
    seed, known = lite_kodak.earlier_run([f], "gsc:lite:ordered")
    assert seed[1] == {"image": "b.png", "codec": "gsc:lite:ordered", "target_bpp": 0.0075, "fit": True, "bytes": 280,
                       "bpp": 0.01, "encode_s": 1.0, "decode_s": 2.0, "scale": 8.0, "psnr": 20.5}
    assert set(known["psnr"]) == {("a.png", 300), ("b.png", 280)} and known["flip"][("a.png", 300)] == {"fit": False}
    monkeypatch.setattr("gsc.eval.classical.SearchState.run", lambda *a: pytest.fail("searched"))
    again = ClassicalBench("webp", grid=grid, known=known["psnr"])
    assert again.encode(pic, 300) == data and "rebuilt" in again.info(data)["source"]
    with pytest.raises(NoFit, match="earlier run"):
        ClassicalBench("webp", "flip", grid=grid, known=known["flip"]).encode(pic, 300)


def test_help_names_the_cache_and_budgets(capsys):
    with pytest.raises(SystemExit):
        lite_kodak.main(["--help"])
    out = capsys.readouterr().out
    assert "0.005,0.0075,0.01,0.015,0.02" in out and "--fresh" in out and "--channels" in out
