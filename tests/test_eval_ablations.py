"""The ablation scripts: bench configurations, with a plain test codec standing in for the preset's Codec."""

import json
import sys
from pathlib import Path

import pytest

from gsc.eval import codecs as bench_codecs
from gsc.eval.results import load_curves

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from conftest import TinyCodec, make_dataset  # noqa: E402


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", n=3)
    (data / "captions.json").write_text(json.dumps({f"im{i}.png": f"caption {i}" for i in range(3)}))
    senders = []  # (selection, TinyCodec) per sender built; the receivers (no selection) are not listed

    def make(preset, captioner, selection):
        codec = TinyCodec()
        if selection is not None:
            senders.append((selection, codec))
        return codec

    monkeypatch.setattr(bench_codecs, "_gsc_codec", make)
    common = [str(data), "--out-dir", str(tmp_path / "out"), "--doc", str(tmp_path / "results.md"), "--no-learned"]
    return tmp_path, common, senders


def calls(senders) -> set:
    return {call for _, codec in senders for call in codec.calls}


def test_wrong_captions_swaps_every_caption(setup):
    import ablation_wrong_captions as ab

    tmp_path, common, senders = setup
    assert ab.main([*common, "--channels", "0,1"]) == 0
    right = {(f"im{i}.png", c, f"caption {i}") for i in range(3) for c in (0, 1)}
    wrong = {(f"im{i}.png", c, f"caption {(i + 1) % 3}") for i in range(3) for c in (0, 1)}
    assert calls(senders) == right | wrong
    bundle = tmp_path / "out" / "ablation_wrong_captions_data_lite.json"
    assert [c["name"] for c in load_curves(bundle)] == ["gsc lite", "gsc lite (swapped captions)"]
    assert load_curves(bundle.with_name("ablation_wrong_captions_data_lite.gsc.lite.ordered.swapped-captions.json"))
    text = (tmp_path / "results.md").read_text()
    assert "<!-- gsc:ablation-wrong_captions_data_lite -->" in text and "Δ (swapped − right)" in text
    assert "`python benchmarks/" in text
    # every metric has a row per C, with the count of images the right caption helps (TinyCodec ignores captions)
    for label in ("PSNR (dB) ↑", "ST-LPIPS (alex) ↓", "FLIP ↓", "chroma PSNR (dB) ↑"):
        assert f"| 1 | 3 | {label} |" in text
    assert "| 0/3 |" in text and "| 1 | 3 | mean C |" not in text


def test_selection_runs_every_method(setup):
    import ablation_selection as ab

    tmp_path, common, senders = setup
    assert ab.main([*common, "--channels", "1", "--limit", "2"]) == 0
    assert sorted({s for s, _ in senders}) == sorted(["ssim", "ssim-abs", "ssim-full", "energy", "random"])
    curves = load_curves(tmp_path / "out" / "ablation_selection_data_lite_first2.json")
    assert len(curves) == 5 and all(len(c["results"]["bpp"]) == 1 for c in curves)
    assert all("st-lpips-alex" in c["results"] and "flip" in c["results"] for c in curves)
    assert [c["codec"] for c in curves][-1] == "gsc:lite:random"
    # resumable: a second run with --resume measures nothing
    senders.clear()
    assert ab.main([*common, "--channels", "1", "--limit", "2", "--resume"]) == 0
    assert not calls(senders)


def test_caption_only_and_channel_sweep(setup):
    import ablation_caption_only
    import ablation_channels

    tmp_path, common, senders = setup
    common = [*common, "--metrics", "psnr,ms-ssim"]   # what is swept, not what is scored, is under test
    assert ablation_caption_only.main(common) == 0
    assert calls(senders) == {(f"im{i}.png", 0, f"caption {i}") for i in range(3)} | \
        {(f"im{i}.png", 0, "") for i in range(3)}
    text = (tmp_path / "results.md").read_text()
    assert "| caption | 3 |" in text and "| no caption | 3 |" in text and "| caption − none | – |" in text
    senders.clear()
    assert ablation_channels.main([*common, "--channels", "0,2", "--compare"]) == 0
    assert {c for _, c, _ in calls(senders)} == {0, 2}
    (sweep,) = load_curves(tmp_path / "out" / "ablation_channels_data_lite.json")
    assert len(sweep["results"]["bpp"]) == 2 and sweep["results"]["bpp"][0] < sweep["results"]["bpp"][1]
    text = (tmp_path / "results.md").read_text()
    assert "Ablation: caption only" in text and "Ablation: C sweep" in text and "| gsc lite | 2 | 3/3 |" in text
