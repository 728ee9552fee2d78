"""benchmarks/lite_kodak.py as a gsc bench configuration: WebP's pick per metric, fits, and --help."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import lite_kodak  # noqa: E402

METRICS = [m for m, _, _ in lite_kodak.COLUMNS]


def _rec(codec, image, value, fit=True):
    r = {"codec": codec, "target_bpp": 0.01, "image": image, "fit": fit}
    if fit:
        r.update({m: value for m in METRICS}, bytes=100, bpp=0.009, channels=2, encode_s=1.0, decode_s=2.0,
                 step={"luma": 2.0, "chroma": [3.0, 4.0]})
    return r


def test_each_metric_meets_webps_pick_on_that_metric():
    webp = {"webp": 1.0, "webp:st-lpips-alex": 2.0, "webp:flip": 3.0, "webp:colour-drift": 4.0}
    recs = [_rec("gsc:lite:ordered", i, 0.5) for i in ("a", "b")]
    recs += [_rec(c, i, v) for c, v in webp.items() for i in ("a", "b")]
    recs.append(_rec("gsc:lite:ordered", "c", None, fit=False))
    recs += [_rec(c, "c", None, fit=False) for c in webp]
    (row,) = lite_kodak.rows({"per_image": recs}, "gsc:lite:ordered", [0.01])
    assert row["images"] == 2 and row["of"] == 3  # the image gsc cannot fit is counted, not averaged
    assert row["webp"]["st_lpips_alex"] == 2.0 and row["webp"]["flip"] == 3.0
    assert row["webp"]["colour_drift"] == 4.0 and row["webp"]["psnr"] == row["webp"]["haarpsi"] == 1.0
    assert row["st_lpips_wins"] == 2 and row["channels"] == 2
    table = "\n".join(lite_kodak.main_table([row]))
    assert "| 0.01 | 2/3 | 0.0090 (0.0090) | 2.0 |" in table and "colour drift ↓" in table


def test_help_names_the_cache_and_budgets(capsys):
    with pytest.raises(SystemExit):
        lite_kodak.main(["--help"])
    out = capsys.readouterr().out
    assert "0.005,0.0075,0.01,0.015,0.02" in out and "--fresh" in out and "--channels" in out
