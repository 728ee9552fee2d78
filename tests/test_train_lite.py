"""`gsc train-lite`'s stage runner: a codec stage resumes where it stopped, and --init warm-starts from
another run's checkpoint (weights and entropy model; fresh counters). Tiny budgets on real BSDS500 crops."""

from pathlib import Path

import pytest
import torch

from gsc.train.lite import LiteTrainConfig, train_lite

BSDS = Path(__file__).resolve().parents[2] / "shared/data/bsds500"
pytestmark = pytest.mark.shared_data("bsds500")


def config(tmp_path, out, steps, **kw):
    return LiteTrainConfig(data=str(BSDS), out=str(tmp_path / out), weights=str(tmp_path / "weights"),
                           threads=1, batch=2, crop=64, val_images=1, save_every=1000,
                           steps={"codec": steps}, minutes={"codec": 10.0}, **kw)


def ckpt(tmp_path, out):
    return torch.load(tmp_path / out / "codec.ckpt", weights_only=False)


def test_codec_stage_resumes_and_warm_starts(tmp_path, one_thread):
    train_lite(config(tmp_path, "a", 2), ["codec"])
    first = ckpt(tmp_path, "a")
    assert first["step"] == 2 and set(first["modules"]) == {"g_a", "g_s", "eb"}
    assert (tmp_path / "weights/lite_analysis.safetensors").is_file()

    train_lite(config(tmp_path, "a", 3), ["codec"])  # the same run, a larger budget: one more step
    resumed = ckpt(tmp_path, "a")
    assert resumed["step"] == 3 and resumed["elapsed"] >= first["elapsed"]

    # Warm-start from a checkpoint no cold start could resemble: weights shifted by 0.5.
    marked = dict(resumed, modules={**resumed["modules"], "g_a": {k: v + 0.5 for k, v in
                                                                  resumed["modules"]["g_a"].items()}})
    torch.save(marked, tmp_path / "marked.ckpt")
    train_lite(config(tmp_path, "b", 1, init={"codec": str(tmp_path / "marked.ckpt")}), ["codec"])
    started = ckpt(tmp_path, "b")
    assert started["step"] == 1  # fresh counters
    for k, v in marked["modules"]["g_a"].items():
        assert torch.allclose(started["modules"]["g_a"][k], v, atol=1e-2), k


def test_warm_start_ema_starts_from_the_loaded_weights(tmp_path):
    from gsc.train.lite import StageRunner

    source = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(source.weight, 7.0)
    torch.save({"modules": {"adapter": source.state_dict()}, "step": 5, "extra": {}}, tmp_path / "src.ckpt")
    fresh = torch.nn.Linear(3, 2)
    cfg = LiteTrainConfig(out=str(tmp_path / "run"), init={"adapter": str(tmp_path / "src.ckpt")})
    runner = StageRunner(cfg, "adapter", {"adapter": fresh}, list(fresh.parameters()), ema_module=fresh)
    assert torch.equal(fresh.weight, source.weight)
    assert torch.equal(runner.ema.shadow["weight"], source.weight)


def test_cuda_without_a_gpu_is_one_line(tmp_path):
    from gsc.errors import GSCError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(GSCError, match="no CUDA"):
        train_lite(config(tmp_path, "c", 1, device="cuda"), ["codec"])
