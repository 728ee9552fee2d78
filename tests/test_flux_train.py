"""``gsc train-adapter`` on the flux-tiny preset: runs, logs, checkpoints in safetensors, resumes, and
precomputes; the precomputed SSIM selection equals the sender's."""

import json
import random

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from gsc.latent.selection import select_channels  # noqa: E402
from gsc.train.adapter import CaptionedImages, draw_condition, read_captions  # noqa: E402
from gsc.train.adapter_cli import register  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for i, size in enumerate([(40, 56), (48, 36)]):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(images / f"im{i}.png")
    (tmp_path / "captions.json").write_text(json.dumps({"_about": "test", "im0.png": "a red door",
                                                        "im1.png": "a blue sky"}))
    return tmp_path


def cli():
    app = typer.Typer()

    @app.callback()
    def main():  # a group, so that the command is called by name as under `gsc`
        pass

    register(app)
    return app


def run(folder, *extra):
    args = ["train-adapter", "--data", str(folder / "images"), "--captions", str(folder / "captions.json"),
            "--out", str(folder / "run"), "--preset", "flux-tiny", "--resolution", "32", "--mixed-precision", "no",
            "--condition-dim", "16", "--log-every", "1", "--save-every", "2", *extra]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_flux_train_adapter_cli_checkpoints_logs_and_resumes(folder):
    run(folder, "--steps", "2")
    out = folder / "run"
    assert (out / "checkpoints" / "step-0000002" / "model.safetensors").exists()
    assert (out / "adapter" / "diffusion_pytorch_model.safetensors").exists()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)

    from safetensors.torch import load_file

    first = load_file(str(out / "adapter" / "diffusion_pytorch_model.safetensors"))
    run(folder, "--steps", "3", "--precompute")
    # Resumed, not restarted: the optimizer and the schedule continue from step 2's checkpoint, so after
    # one more step AdamW's step count is 3 and the warm-up schedule is at step 3 (a fresh run shows 1).
    def adam_steps(step):
        state = torch.load(out / "checkpoints" / f"step-{step:07d}" / "optimizer.bin", weights_only=False)["state"]
        return {int(v["step"]) for v in state.values()}

    assert adam_steps(2) == {2} and adam_steps(3) == {3}
    schedule = torch.load(out / "checkpoints" / "step-0000003" / "custom_checkpoint_0.pkl", weights_only=False)
    assert schedule["last_epoch"] == 3
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert sorted(p.name for p in (out / "cache").glob("*.safetensors")) == ["im0.safetensors", "im1.safetensors"]
    second = load_file(str(out / "adapter" / "diffusion_pytorch_model.safetensors"))
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the resumed step trained

    # The trained adapter decodes through the preset's generator.
    from gsc.generate import GENERATORS, GenerationRequest
    import gsc.generate.flux  # noqa: F401

    g = GENERATORS.create("flux-tiny", adapter=str(out / "adapter"))
    image = g.generate(GenerationRequest("a red door", torch.ones(2, 2, 2), [3, 9], 320, 32, 20, 0, 2))
    assert image.shape == (3, 32, 20)


def test_flux_train_adapter_rejects_bad_options(folder):
    result = CliRunner().invoke(cli(), ["train-adapter", "--data", str(folder / "images"), "--preset", "lite",
                                        "--out", str(folder / "run")])
    assert result.exit_code != 0 and "FLUX adapter" in str(result.exception)
    with pytest.raises(Exception, match="multiple of 16"):
        CaptionedImages(folder / "images", {}, 30)


def test_flux_train_data_crops_and_captions(folder):
    captions = read_captions(folder / "captions.json")
    assert captions == {"im0.png": "a red door", "im1.png": "a blue sky"}
    data = CaptionedImages(folder / "images", captions, 32)
    items = [data[i] for i in range(len(data))]
    assert [x["caption"] for x in items] == ["a red door", "a blue sky"]
    assert all(x["image"].shape == (3, 32, 32) for x in items)
    assert all(0 <= x["image"].min() and x["image"].max() <= 1 for x in items)


def test_flux_train_condition_draw_uses_the_senders_ssim_selection():
    # Training (and its precomputed cache) keeps only the image area-averaged to the latent grid;
    # the SSIM selection on it must equal the sender's on the full image.
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 48, generator=g)
    y = torch.randn(320, 4, 3, generator=g) * 3
    small = torch.nn.functional.adaptive_avg_pool2d(image[None], (4, 3))[0]
    for c in (1, 2, 5, 16):
        assert select_channels(torch.round(y), small, c, "ssim") == select_channels(torch.round(y), image, c, "ssim")
    grid, mask = draw_condition(y[None], small[None], 16, p_ssim=1.0, p_coarse=0.0, rng=random.Random(1))
    idx = mask[0].nonzero().flatten().tolist()
    assert 1 <= len(idx) <= 16
    assert idx == select_channels(torch.round(y), image, len(idx), "ssim")
    assert torch.equal(grid[0, idx], torch.round(y[idx]))
    assert grid[0].abs().sum() == grid[0, idx].abs().sum()  # unselected channels are zero
    # Random index sets and coarse steps: Δ·round(y/Δ) with Δ one of the stream's steps.
    grid, mask = draw_condition(y[None], small[None], 16, p_ssim=0.0, p_coarse=1.0, rng=random.Random(2))
    idx = mask[0].nonzero().flatten().tolist()
    sel = grid[0, idx]
    assert any(torch.allclose(sel, torch.round(y[idx] / s) * s) for s in (1.5, 2.0, 3.0, 4.0, 6.0))
