"""The ablation scripts' plumbing, with a plain test codec standing in for the preset (no weights needed)."""

import json
import sys
from pathlib import Path

import pytest

from gsc.eval import evaluate
from gsc.eval.results import load_curves

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(Path(__file__).parent))

from test_eval_evaluate import TinyCodec, _dataset  # noqa: E402


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "data", n=3)
    (data / "captions.json").write_text(json.dumps({f"im{i}.png": f"caption {i}" for i in range(3)}))
    codecs = []

    def make(settings):
        codecs.append((settings, TinyCodec()))
        return codecs[-1][1]

    monkeypatch.setattr(evaluate, "make_codec", make)
    common = [str(data), "--out-dir", str(tmp_path / "out"), "--doc", str(tmp_path / "results.md"), "--no-learned"]
    return tmp_path, common, codecs


def test_wrong_captions_swaps_every_caption(setup):
    import ablation_wrong_captions as ab

    tmp_path, common, codecs = setup
    assert ab.main([*common, "--channels", "0,1"]) == 0
    (_, right), (_, wrong) = codecs
    got_right = {name: cap for name, _, cap in right.calls}
    got_wrong = {name: cap for name, _, cap in wrong.calls}
    assert got_right == {f"im{i}.png": f"caption {i}" for i in range(3)}
    assert got_wrong == {f"im{i}.png": f"caption {(i + 1) % 3}" for i in range(3)}
    bundle = tmp_path / "out" / "ablation_wrong_captions_data_lite.json"
    assert [c["name"] for c in load_curves(bundle)] == ["lite: right captions", "lite: swapped captions"]
    text = (tmp_path / "results.md").read_text()
    assert "<!-- gsc:ablation-wrong_captions_data_lite -->" in text and "Δ (swapped − right)" in text
    # every metric has a row per C, with the count of images the right caption helps (TinyCodec ignores captions)
    for label in ("PSNR (dB) ↑", "ST-LPIPS (alex) ↓", "FLIP ↓", "chroma PSNR (dB) ↑"):
        assert f"| 1 | 3 | {label} |" in text
    assert "| 0/3 |" in text


def test_selection_runs_every_method(setup):
    import ablation_selection as ab

    tmp_path, common, codecs = setup
    assert ab.main([*common, "--channels", "1", "--limit", "2"]) == 0
    assert [s.selection for s, _ in codecs] == ["ssim", "ssim-abs", "ssim-full", "energy", "random"]
    curves = load_curves(tmp_path / "out" / "ablation_selection_data_lite_first2.json")
    assert len(curves) == 5 and all(len(c["results"]["bpp"]) == 1 for c in curves)
    assert all("st-lpips-alex" in c["results"] and "flip" in c["results"] for c in curves)


def test_caption_only_and_channel_sweep(setup):
    import ablation_caption_only
    import ablation_channels

    tmp_path, common, codecs = setup
    assert ablation_caption_only.main(common) == 0
    (s1, c1), (s2, c2) = codecs
    assert s1.channels == [0] and {cap for _, _, cap in c1.calls} == {"caption 0", "caption 1", "caption 2"}
    assert {cap for _, _, cap in c2.calls} == {""}
    assert ablation_channels.main([*common, "--channels", "0,2", "--compare"]) == 0
    (sweep,) = load_curves(tmp_path / "out" / "ablation_channels_data_lite.json")
    assert len(sweep["results"]["bpp"]) == 2
    text = (tmp_path / "results.md").read_text()
    assert "Ablation: caption only" in text and "Ablation: C sweep" in text
