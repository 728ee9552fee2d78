import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsc.errors import GSCError
from gsc.eval import codecs
from gsc.eval.evaluate import EvalSettings, parse_channels, run_eval
from gsc.eval.metrics import ms_ssim, psnr
from gsc.eval.results import load_curves

SRC = Path(__file__).resolve().parents[1] / "src"


class TinyCodec:
    """A real, plain codec standing in for ``gsc.codec.Codec`` (same encode/decode/info calls) to exercise the
    evaluation loop: a downscaled WebP, larger for more channels.

    Stream: width, height (2 × uint16 big-endian), then the WebP file.
    """

    def __init__(self):
        self.calls = []

    def encode(self, image, channels, caption=None, image_name=None, step=1.0, seed=None, steps=None,
               caption_policy=None):
        import imagecodecs

        self.calls.append((image_name, channels, caption))
        h, w = image.shape[-2:]
        d = 16 // 2 ** min(channels, 3)
        a = (image.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()
        small = np.asarray(Image.fromarray(a).resize((max(1, w // d), max(1, h // d)), Image.LANCZOS))
        return struct.pack(">HH", w, h) + imagecodecs.webp_encode(small, level=30, lossless=False)

    def decode(self, data):
        import imagecodecs

        w, h = struct.unpack(">HH", data[:4])
        small = imagecodecs.webp_decode(data[4:])[..., :3]
        big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
        return torch.from_numpy(big.copy()).permute(2, 0, 1).float() / 255

    def info(self, data):
        return {"header_bytes": 4, "caption_bytes": 0, "latent_bytes": len(data) - 4}


class RefusingCodec(TinyCodec):
    def encode(self, *a, **k):
        raise AssertionError("encode must not run: the record is cached")


def _dataset(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = (rng.random((11, 12, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((192, 176), Image.BICUBIC).save(folder / f"im{i}.png")
    return folder


@pytest.fixture()
def data(tmp_path):
    return _dataset(tmp_path / "data")


def test_eval_measures_real_streams(data, tmp_path):
    out = tmp_path / "res" / "gsc.json"
    out.parent.mkdir()
    codec = TinyCodec()
    settings = EvalSettings(preset="lite", channels=[1, 3], learned=False)
    result = run_eval(data, settings, out, codec=codec, progress=False)
    recs = result["per_image"]
    assert len(recs) == 6 and {r["target_channels"] for r in recs} == {1, 3}
    assert sorted(c[1] for c in codec.calls) == [1, 1, 1, 3, 3, 3]  # C reaches the encoder
    from gsc.image import load_image

    for r in recs:
        stream = next(p for p in (out.with_suffix(".cache")).glob(f"{Path(r['image']).stem}-*.gsc")
                      if json.loads(p.with_suffix(".json").read_text())["target_channels"] == r["target_channels"])
        data_bytes = stream.read_bytes()
        assert r["bytes"] == len(data_bytes) and r["bpp"] == len(data_bytes) * 8 / (192 * 176)
        original = load_image(data / r["image"])
        recon = codec.decode(data_bytes)
        assert r["psnr"] == pytest.approx(psnr(recon, original))
        assert r["ms_ssim"] == pytest.approx(ms_ssim(recon, original))
        assert r["latent_bytes"] == len(data_bytes) - 4
    (c,) = load_curves(out)
    bpp = c["results"]["bpp"]
    assert bpp[0] < bpp[1] and c["results"]["psnr-rgb"][0] < c["results"]["psnr-rgb"][1]
    assert bpp[0] == pytest.approx(np.mean([r["bpp"] for r in recs if r["target_channels"] == 1]))
    assert [p["target_channels"] for p in result["points"]] == [1, 3] and result["missing"] == []
    assert result["points"][0]["latent_bytes"] == pytest.approx(np.mean([r["latent_bytes"] for r in recs
                                                                         if r["target_channels"] == 1]))
    assert out.with_suffix(".md").read_text().count("\n| gsc lite | ") == 2  # a row per C
    assert out.with_suffix(".png").stat().st_size > 1000
    assert not list(out.parent.glob("gsc.*.json"))  # one curve: the results file is CompressAI's, alone


def test_eval_resumes_from_cache_and_recomputes_without_resume(data, tmp_path):
    out = tmp_path / "gsc.json"
    settings = EvalSettings(channels=[2], learned=False)
    first = run_eval(data, settings, out, codec=TinyCodec(), progress=False)
    again = run_eval(data, settings, out, codec=RefusingCodec(), resume=True, progress=False)
    assert again["results"] == first["results"]
    with pytest.raises(AssertionError, match="cached"):
        run_eval(data, settings, out, codec=RefusingCodec(), resume=False, progress=False)
    # another operating point is a different cache key: it must be computed
    with pytest.raises(AssertionError, match="cached"):
        run_eval(data, EvalSettings(channels=[2], selection="energy", learned=False), out, codec=RefusingCodec(),
                 resume=True, progress=False)


def test_eval_passes_captions_and_keys_the_cache_on_them(data, tmp_path):
    out = tmp_path / "gsc.json"
    caps = {f"im{i}.png": f"caption {i}" for i in range(3)}
    codec = TinyCodec()
    run_eval(data, EvalSettings(channels=[1], captions=caps, learned=False), out, codec=codec, progress=False)
    assert sorted(codec.calls) == [(f"im{i}.png", 1, f"caption {i}") for i in range(3)]
    swapped = {f"im{i}.png": f"caption {(i + 1) % 3}" for i in range(3)}
    with pytest.raises(AssertionError, match="cached"):
        run_eval(data, EvalSettings(channels=[1], captions=swapped, learned=False), out, codec=RefusingCodec(),
                 resume=True, progress=False)
    with pytest.raises(GSCError, match="no caption for im2.png"):
        run_eval(data, EvalSettings(channels=[1], captions={"im0.png": "a", "im1.png": "b"}, learned=False), out,
                 codec=RefusingCodec(), progress=False)


def test_eval_reports_unavailable_learned_metrics_and_leaves_them_out(data, tmp_path):
    lines = []
    result = run_eval(data, EvalSettings(channels=[1]), tmp_path / "g.json", codec=TinyCodec(), progress=False,
                      limit=2, echo=lines.append)
    from gsc.eval.metrics import PerceptualMetrics

    missing = PerceptualMetrics().unavailable
    assert lines == list(missing.values())
    for name in missing:
        assert name not in result["results"] and all(name not in r for r in result["per_image"])
    assert result["unavailable"] == missing


class SetGap:
    """A set-level metric with FID's calls: |mean of the real images − mean of the fakes|."""

    def reset(self):
        self.sums = {True: [], False: []}

    def update(self, x, real):
        self.sums[real].append(float(x.mean()))

    def compute(self):
        return abs(np.mean(self.sums[True]) - np.mean(self.sums[False]))


def test_eval_learned_metrics_per_image_and_per_set_also_from_the_cache(data, tmp_path, monkeypatch):
    from torchmetrics.image import PeakSignalNoiseRatio

    from gsc.eval import metrics
    from gsc.image import load_image

    monkeypatch.setattr(metrics, "LEARNED", {"psnr_tm": (lambda: PeakSignalNoiseRatio(data_range=1.0), "pair", ""),
                                             "gap": (SetGap, "set", "")})
    out, codec = tmp_path / "l.json", TinyCodec()
    result = run_eval(data, EvalSettings(channels=[1]), out, codec=codec, progress=False)
    recs = result["per_image"]
    originals = {r["image"]: load_image(data / r["image"]) for r in recs}
    recons = {r["image"]: codec.decode(codec.encode(originals[r["image"]], 1)) for r in recs}
    for r in recs:
        assert r["psnr_tm"] == pytest.approx(psnr(recons[r["image"]], originals[r["image"]]), abs=1e-3)
    gap = abs(np.mean([float(metrics.to_8bit(o).mean()) for o in originals.values()])
              - np.mean([float(metrics.to_8bit(x).mean()) for x in recons.values()]))
    assert result["results"]["gap"] == [pytest.approx(gap, rel=1e-4)]  # (float32 means)
    assert result["results"]["psnr_tm"] == [pytest.approx(np.mean([r["psnr_tm"] for r in recs]))]
    again = run_eval(data, EvalSettings(channels=[1]), out, codec=RefusingCodec(), resume=True, progress=False)
    assert again["results"]["gap"] == result["results"]["gap"]  # the set rebuilt from the kept images


def test_parse_channels():
    assert parse_channels("4,1,2,2") == [1, 2, 4]
    with pytest.raises(GSCError, match="channels"):
        parse_channels("1,x")


def test_eval_command(data, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from gsc.eval.commands import register

    codec = TinyCodec()
    monkeypatch.setattr(codecs, "_gsc_codec", lambda *a: codec)  # the preset's Codec, sender and receiver
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"_about": "notes", **{f"im{i}.png": "a photo" for i in range(3)}}))
    app = typer.Typer()
    register(app)
    out = tmp_path / "cli.json"
    res = CliRunner().invoke(app, ["eval", str(data), "--channels", "1,2", "--captions", str(caps), "--no-learned",
                                   "-o", str(out), "--save-recon", str(tmp_path / "recon")])
    assert res.exit_code == 0, res.output
    assert "| gsc lite | 2 | 3/3 |" in res.output and f"`gsc eval {data}" not in res.output  # (no ARGV set)
    assert {c[2] for c in codec.calls} == {"a photo"} and len(codec.calls) == 6
    assert len(list((tmp_path / "recon" / "c2").glob("*.png"))) == 3
    assert load_curves(out)[0]["results"]["bpp"][0] > 0


def test_eval_splits_images_between_accelerate_processes(data, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(SRC)!r}, {str(Path(__file__).parent)!r}]
        from accelerate import PartialState
        from test_eval_evaluate import TinyCodec
        from gsc.eval.evaluate import EvalSettings, run_eval
        codec = TinyCodec()
        run_eval({str(data)!r}, EvalSettings(channels=[1], learned=False), {str(tmp_path / 'dist.json')!r},
                 codec=codec, progress=False)
        print("rank", PartialState().process_index, "images", sorted(c[0] for c in codec.calls))
    """))
    # accelerate's torchrun launcher is called --multi_gpu; without CUDA it starts CPU processes (gloo)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = sorted(line for line in res.stdout.splitlines() if line.startswith("rank"))
    assert len(lines) == 2
    # each process encoded its own share, and process 0 wrote all three images' records
    assert "['im0.png', 'im1.png']" in lines[0] and "['im2.png']" in lines[1]
    assert len(json.loads((tmp_path / "dist.json").read_text())["per_image"]) == 3
