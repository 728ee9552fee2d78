"""`gsc train-lite`: a leg trains, resumes where it stopped (same weights as one uninterrupted run), and
--init warm-starts from weights; g_s starts as the bicubic upscale and its loss is the thumbnail's error.
Tiny budgets on real BSDS500 crops."""

import json
from pathlib import Path

import pytest
import torch

from gsc.models import thumbnail as T
from gsc.models.lite import LiteSynthesis
from gsc.nn import load_model, save_model
from gsc.train.lite import LiteTrainConfig, coded_thumbnails, synthesis_loss, train_lite

ROOT = Path(__file__).resolve().parents[1]
BSDS = ROOT.parent / "shared/data/bsds500"
pytestmark = [pytest.mark.shared_data("bsds500"), pytest.mark.slow]   # training


def config(tmp_path, out, steps, **kw):
    return LiteTrainConfig(data=str(BSDS), out=str(tmp_path / out), weights=str(tmp_path / out / "weights"),
                           threads=1, batch=2, crop=64, val_images=1, save_every=2,
                           steps={"synthesis": steps}, minutes={"synthesis": 10.0}, **kw)


def weights(tmp_path, out):
    return load_model(LiteSynthesis, tmp_path / out / "weights/lite_synthesis.safetensors").state_dict()


def test_synthesis_leg_resumes_like_an_uninterrupted_run(tmp_path, one_thread, monkeypatch):
    import gsc.train.lite as lite

    train_lite(config(tmp_path, "once", 4), ["synthesis"])
    with monkeypatch.context() as m:   # interrupted after 2 steps: a clock where each step takes 301 s of 600
        clock = iter(range(0, 10**6, 301))
        m.setattr(lite.time, "time", lambda: next(clock))
        train_lite(config(tmp_path, "twice", 4), ["synthesis"])
    assert json.loads((tmp_path / "twice/synthesis/state.json").read_text())["step"] == 2
    rerun = config(tmp_path, "twice", 4)
    rerun.minutes["synthesis"] = 30.0                          # rerun with time left: resumes at step 2
    train_lite(rerun, ["synthesis"])
    assert json.loads((tmp_path / "twice/synthesis/state.json").read_text())["step"] == 4
    once, twice = weights(tmp_path, "once"), weights(tmp_path, "twice")
    moved = [k for k in once if not torch.equal(once[k], LiteSynthesis().state_dict()[k])]
    assert moved, "training changed nothing"
    for k in once:
        assert torch.allclose(once[k], twice[k], atol=1e-6), k


def test_init_warm_starts_from_weights(tmp_path, one_thread):
    marked = LiteSynthesis()
    with torch.no_grad():
        for p in marked.parameters():
            p.add_(0.5)
    save_model(marked, tmp_path / "marked.safetensors")
    train_lite(config(tmp_path, "warm", 1, lr=1e-9, init={"synthesis": str(tmp_path / "marked.safetensors")}),
               ["synthesis"])
    trained = weights(tmp_path, "warm")
    for k, v in marked.state_dict().items():
        assert torch.allclose(trained[k], v, atol=1e-3), k


def test_untrained_g_s_is_the_bicubic_thumbnail_and_the_loss_measures_its_error():
    x = torch.rand(2, 3, 64, 96)
    planes, steps = coded_thumbnails(x, 2, torch.tensor([10, 14]), torch.tensor([3, 4]))
    batch = {"x": x, "planes": planes, "steps": steps, "scale": torch.full((2,), 4.7568), "text": torch.zeros(2, 384)}
    g_s = LiteSynthesis()
    out = g_s(planes, (64, 96), steps, batch["scale"], batch["text"])
    assert torch.allclose(out, T.from_planes(planes, (64, 96)), atol=1e-6)   # zero-init residual
    loss, logs = synthesis_loss(g_s, batch, chroma_weight=0.0)
    assert abs(float(loss) - float(((out - x) ** 2).mean())) < 1e-6 and abs(logs["gain_db"]) < 1e-6


def test_cuda_without_a_gpu_is_one_line(tmp_path):
    from gsc.errors import GSCError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(GSCError, match="no CUDA"):
        train_lite(config(tmp_path, "c", 1, device="cuda"), ["synthesis"])
