"""``gsc train-adapter`` on the flux-tiny preset: the CLI runs, logs, validates, checkpoints and resumes; a
resumed run equals the uninterrupted one; the EMA, the cache (keys, dtypes, crash resume), the data order
and the options. tests/test_flux_distributed.py runs it on two processes."""

import json
import math
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

import typer  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from gsc.errors import GSCError  # noqa: E402
from gsc.format.tables import STEPS  # noqa: E402
from gsc.latent.selection import select_channels  # noqa: E402
from gsc.train.adapter import AdapterTrainConfig, draw_condition, read_captions  # noqa: E402
from gsc.train.adapter_cli import register  # noqa: E402
from gsc.train.data import CaptionedImages, ShardedBatches  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate")


@pytest.fixture()
def fresh_accelerate():
    """accelerate keeps one process-wide state; each in-process run here may ask for other settings."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture()
def folder(tmp_path):
    """Four images, two with the same stem (a.png, a.jpg) and one in a subfolder, with captions."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for name, size in [("a.png", (40, 56)), ("a.jpg", (48, 36)), ("sub/b.png", (32, 44)), ("c.png", (36, 36))]:
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(images / name)
    (tmp_path / "captions.json").write_text(json.dumps({"_about": "test", "a.png": "a red door", "a.jpg": "a blue sky",
                                                        "sub/b.png": "green grass", "c.png": "a cat"}))
    return tmp_path


def config(folder, **kw):
    base = dict(data=str(folder / "images"), captions=str(folder / "captions.json"), out=str(folder / "run"),
                preset="flux-tiny", resolution=32, batch=1, lr=1e-3, warmup=0, steps=3, mixed_precision="no",
                condition_dim=16, workers=0, validate_every=0, log_every=1, save_every=10, trackers="jsonl")
    return AdapterTrainConfig(**{**base, **kw})


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
            "--condition-dim", "16", "--log-every", "1", "--save-every", "2", "--warmup", "0", "--lr", "1e-3",
            "--validate-images", "2", *extra]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.mark.slow   # training
def test_flux_train_adapter_cli_logs_validates_checkpoints_and_resumes(folder):
    run(folder, "--steps", "2", "--validate-every", "2", "--workers", "1")
    out = folder / "run"
    assert (out / "checkpoints" / "step-0000002" / "model.safetensors").exists()
    assert (out / "adapter" / WEIGHTS).exists() and (out / "adapter-raw" / WEIGHTS).exists()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2] and all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    assert [r["step"] for r in log if "val_loss" in r] == [0, 2]
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))  # accelerate's tensorboard tracker
    for step in ("step-0000000", "step-0000002"):
        assert sorted(p.name for p in (out / "validation" / step).iterdir()) == ["a.jpg.png", "a.png.png"]
    # The caption cache is keyed by relative path: a.png and a.jpg do not collide, sub/ is kept.
    text = out / "cache" / "text"
    cached = sorted(p.relative_to(text).as_posix() for p in text.rglob("*.safetensors"))
    assert cached == ["a.jpg.safetensors", "a.png.safetensors", "c.png.safetensors", "sub/b.png.safetensors"]

    first = load_file(str(out / "adapter-raw" / WEIGHTS))
    result = run(folder, "--steps", "3", "--validate-every", "0")
    assert "resumed from" in result.output
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    second = load_file(str(out / "adapter-raw" / WEIGHTS))
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the resumed step trained

    # The trained adapter decodes through the preset's generator.
    from gsc.generate import GENERATORS, GenerationRequest, load_generators

    load_generators()
    g = GENERATORS.create("flux-tiny", adapter=str(out / "adapter"))
    image = g.generate(GenerationRequest("a red door", torch.ones(2, 2, 2), [3, 9], 320, 32, 20, 0, 2))
    assert image.shape == (3, 32, 20)


@pytest.mark.slow   # training
def test_flux_train_resume_equals_the_uninterrupted_run_and_ema_is_diffusers_average(folder):
    # Every draw comes from the sample's seed and the data order from the step, so 2 steps + a resumed
    # third equal 3 straight steps, bit for bit (random crops encoded on the fly: --precompute none).
    from gsc.train.trainer import train_adapter

    straight = config(folder, out=str(folder / "straight"), precompute="none", save_every=1, keep=3)
    train_adapter(straight)
    split = replace(straight, out=str(folder / "split"), steps=2, save_every=10)
    train_adapter(split)
    train_adapter(replace(split, steps=3))
    for name in ("adapter-raw", "adapter"):
        a, b = (load_file(str(folder / run_ / name / WEIGHTS)) for run_ in ("straight", "split"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # EMA: diffusers' EMAModel with decay min(0.999, (1 + s) / (10 + s)) at its s-th update: 0, then 2/11, 3/12.
    theta = [load_file(str(folder / "straight" / "checkpoints" / f"step-000000{i}" / "model.safetensors"))
             for i in (1, 2, 3)]
    ema = load_file(str(folder / "straight" / "adapter" / WEIGHTS))
    for k in ema:
        expected = theta[0][k]
        for d, t in ((2 / 11, theta[1][k]), (3 / 12, theta[2][k])):
            expected = d * expected + (1 - d) * t
        torch.testing.assert_close(ema[k], expected, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(ema[k], theta[2][k]) for k in ema)


def cache_parts(cfg, folder):
    """What a precompute needs, on the CPU: setup, accelerator, encoders, captions, centre crops, cache."""
    from accelerate import Accelerator

    from gsc.generate.flux_pipeline import FluxChannelPipeline
    from gsc.train.adapter import Encoders, FluxSetup
    from gsc.train.data import FeatureCache

    setup = FluxSetup.from_config(cfg)
    encoders = Encoders(FluxChannelPipeline(**setup.components(torch.float32)), setup.latent_encoder(),
                        torch.device("cpu"), setup.max_sequence_length)
    captions = read_captions(cfg.captions)
    images = CaptionedImages(cfg.data, captions, 32, random_crop=False)
    return setup, Accelerator(cpu=True), encoders, captions, images, FeatureCache(folder / "cache")


def test_flux_train_precompute_keys_dtypes_and_crash_resume(folder):
    # The cache: keyed by relative path, T5/CLIP/x0 in bf16, y in fp32 (the condition rounds it), batched,
    # and a rerun after a crash encodes only what is missing (a stale .part file is ignored).
    from gsc.train.adapter import precompute, prepare_cache

    cfg = config(folder, max_sequence_length=16)  # flux-tiny's own is 32
    setup, acc, encoders, captions, images, cache = cache_parts(cfg, folder)
    prepare_cache(cache, setup.cache_settings(cfg, captions), acc)
    assert precompute(cache, ("text", "image"), images, encoders, acc, batch=3, workers=0) == 4
    entry = cache.read("text", "a.jpg")
    assert entry["prompt_embeds"].dtype == torch.bfloat16 and entry["prompt_embeds"].shape == (16, 32)
    image = cache.read("image", "sub/b.png")
    assert image["x0"].dtype == torch.bfloat16 and image["y"].dtype == torch.float32
    crop = images[images.keys.index("sub/b.png")]["image"]
    torch.testing.assert_close(image["y"], encoders.latent_encoder.analyse(crop))
    torch.testing.assert_close(entry["prompt_embeds"], encoders.text(["a blue sky"])["prompt_embeds"][0].bfloat16())
    assert not torch.equal(cache.read("text", "a.png")["prompt_embeds"], entry["prompt_embeds"])

    before = cache.read("image", "c.png")
    cache.path("image", "c.png").unlink()
    cache.path("image", "c.png").with_name(".c.png.safetensors.123.part").write_bytes(b"half")
    assert precompute(cache, ("text", "image"), images, encoders, acc, batch=3, workers=0) == 1
    # the same entry, up to the batch it was encoded in (c.png alone now, with others before: bf16 rounding)
    for k, v in cache.read("image", "c.png").items():
        torch.testing.assert_close(v.float(), before[k].float(), atol=2e-2, rtol=2e-2)
    # Other settings: the cache starts afresh.
    prepare_cache(cache, {**setup.cache_settings(cfg, captions), "resolution": 48}, acc)
    assert not cache.has("text", "a.png")


def test_flux_train_latent_checkpoint_replaces_the_zoo(folder, tmp_path):
    # --latent-checkpoint: an offline cluster trains with a local CompressAI file; the cached y is that g_a's.
    from gsc.latent._compressai import import_compressai

    import_compressai()
    from compressai.zoo import mbt2018_mean

    torch.manual_seed(5)
    net = mbt2018_mean(quality=8, pretrained=False)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "mbt.pth.tar")
    run(folder, "--steps", "1", "--precompute", "all", "--workers", "0", "--validate-every", "0",
        "--latent-checkpoint", str(tmp_path / "mbt.pth.tar"))
    images = CaptionedImages(folder / "images", {}, 32, random_crop=False)
    crop = images[images.keys.index("c.png")]["image"]
    cached = load_file(str(folder / "run" / "cache" / "image" / "c.png.safetensors"))["y"]
    with torch.no_grad():
        torch.testing.assert_close(cached, net.g_a(crop[None])[0])
    result = CliRunner().invoke(cli(), ["train-adapter", "--data", str(folder / "images"), "--preset", "flux-tiny",
                                        "--out", str(tmp_path / "r2"), "--latent-checkpoint", str(tmp_path / "no.pth")])
    assert result.exit_code != 0 and "checkpoint not found" in str(result.exception)


def test_flux_train_adapter_rejects_bad_options(folder):
    from gsc.train.trainer import AdapterTrainer

    for kw, match in (({"preset": "lite"}, "FLUX adapter"), ({"mixed_precision": "fp16"}, "overflows in float16"),
                      ({"precompute": "some"}, "--precompute"), ({"model": "x/y"}, "does not apply to flux-tiny"),
                      ({"resolution": 30}, "multiple of 16"), ({"trackers": "jsonl,carrier-pigeon"}, "unknown tracker"),
                      ({"ema_decay": 1.0}, "ema_decay"), ({"validate_channels": 400}, "validate_channels"),
                      ({"workers": -1}, "workers")):
        with pytest.raises(GSCError, match=match):
            AdapterTrainer(config(folder, **kw))
    assert not (folder / "run").exists()  # refused before anything was written


def test_flux_train_data_keys_crops_and_sharding(folder):
    captions = read_captions(folder / "captions.json")
    data = CaptionedImages(folder / "images", captions, 32, seed=3)
    assert data.keys == ["a.jpg", "a.png", "c.png", "sub/b.png"]
    assert [data.caption(k) for k in data.keys] == ["a blue sky", "a red door", "a cat", "green grass"]
    assert CaptionedImages(folder / "images", {"b.png": "by name"}, 32).caption("sub/b.png") == "by name"
    items = [data[i] for i in range(8)]
    assert all(x["image"].shape == (3, 32, 32) and 0 <= x["image"].min() and x["image"].max() <= 1 for x in items)
    assert torch.equal(data[1]["image"], items[1]["image"])  # a sample's crop comes from its own seed
    assert not torch.equal(items[1]["image"], items[5]["image"])  # the same image in the next epoch: another crop

    # One process with batch 4 and two with batch 2 see the same global batches; each epoch covers every image.
    one = ShardedBatches(4, 4, seed=3)
    two = [ShardedBatches(4, 2, seed=3, rank=r, processes=2) for r in range(2)]
    streams = [iter(s) for s in (one, *two)]
    for k in range(5):
        whole, left, right = (next(s) for s in streams)
        assert whole == left + right
        assert sorted(i % 4 for i in whole) == [0, 1, 2, 3] and {i // 4 for i in whole} == {k}
    fresh = iter(ShardedBatches(4, 2, seed=3, rank=1, processes=2))
    fourth = [next(fresh) for _ in range(4)][-1]
    assert next(iter(ShardedBatches(4, 2, seed=3, rank=1, processes=2, start=3))) == fourth  # resume skips 3


def test_flux_train_condition_draw_uses_the_senders_ssim_selection():
    # Training (and its precomputed cache) keeps only the image area-averaged to the latent grid;
    # the SSIM selection on it must equal the sender's on the full image.
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 48, generator=g)
    y = torch.randn(320, 4, 3, generator=g) * 3
    small = torch.nn.functional.adaptive_avg_pool2d(image[None], (4, 3))[0]
    for c in (1, 2, 5, 16):
        assert select_channels(torch.round(y), small, c, "ssim") == select_channels(torch.round(y), image, c, "ssim")
    grid, mask = draw_condition(y[None], small[None], 16, p_ssim=1.0, p_coarse=0.0, rngs=[random.Random(1)])
    idx = mask[0].nonzero().flatten().tolist()
    assert 1 <= len(idx) <= 16
    assert idx == select_channels(torch.round(y), image, len(idx), "ssim")
    assert torch.equal(grid[0, idx], torch.round(y[idx]))
    assert grid[0].abs().sum() == grid[0, idx].abs().sum()  # unselected channels are zero
    # Random index sets and coarse steps: Δ·round(y/Δ) with Δ one of the stream's steps.
    grid, mask = draw_condition(y[None], small[None], 16, p_ssim=0.0, p_coarse=1.0, rngs=[random.Random(2)])
    idx = mask[0].nonzero().flatten().tolist()
    sel = grid[0, idx]
    assert any(torch.allclose(sel, torch.round(y[idx] / s) * s) for s in STEPS if s > 1.0)


def test_flux_train_time_shift_follows_the_scheduler():
    # FLUX.1-dev's scheduler shifts with the token count; FLUX.1-schnell's has dynamic shifting off and a
    # fixed shift of 1 (no shift), which training must follow too.
    from diffusers import FlowMatchEulerDiscreteScheduler

    from gsc.generate.flux_pipeline import time_shift_mu, timestep_shift

    dev = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                          base_image_seq_len=256, max_image_seq_len=4096)
    schnell = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    assert timestep_shift(dev, 1024) == pytest.approx(math.exp(time_shift_mu(dev, 1024)))
    assert timestep_shift(dev, 256) == pytest.approx(math.exp(0.5))
    assert timestep_shift(schnell, 1024) == 1.0


def test_flux_train_frees_the_encoders_before_the_transformer_comes_on(folder, monkeypatch):
    # With everything cached, T5, CLIP and g_a must be gone (no reference left anywhere) once
    # _free_encoders returns: the transformer, the validation batch, the adapter and the EMA come after.
    import gc
    import weakref

    from gsc.train.trainer import AdapterTrainer

    free, seen = AdapterTrainer._free_encoders, {}

    def checked(self):
        refs = {"t5": weakref.ref(self.pipe.text_encoder_2), "clip": weakref.ref(self.pipe.text_encoder),
                "g_a": weakref.ref(self.encoders.latent_encoder)}
        free(self)
        gc.collect()
        seen.update({name: ref() is None for name, ref in refs.items()})

    monkeypatch.setattr(AdapterTrainer, "_free_encoders", checked)
    AdapterTrainer(config(folder, precompute="all", steps=1))
    assert seen == {"t5": True, "clip": True, "g_a": True}


@pytest.mark.slow   # a subprocess
def test_flux_train_refuses_fp16_before_importing_diffusers_or_accelerate(folder):
    import subprocess
    import sys

    code = ("import sys, pytest\n"
            "from gsc.errors import GSCError\n"
            "from gsc.train.adapter import AdapterTrainConfig\n"
            "from gsc.train.trainer import AdapterTrainer\n"
            f"cfg = AdapterTrainConfig(data={str(folder / 'images')!r}, preset='flux-tiny', mixed_precision='fp16')\n"
            "with pytest.raises(GSCError, match='overflows in float16'):\n"
            "    AdapterTrainer(cfg)\n"
            "print(sorted(m for m in ('diffusers', 'accelerate') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_flux_train_cache_notices_an_image_replaced_in_place(folder):
    # The manifest keeps each image file's SHA-256: a file rewritten under the same name is encoded again,
    # the others keep their cached encodings.
    from PIL import Image

    from gsc.train.adapter import precompute, prepare_cache

    cfg = config(folder)
    setup, acc, encoders, captions, images, cache = cache_parts(cfg, folder)
    settings = setup.cache_settings(cfg, captions)
    prepare_cache(cache, settings, acc, images)
    assert precompute(cache, ("image",), images, encoders, acc, batch=4, workers=0) == 4
    before = cache.read("image", "c.png")["y"]
    Image.fromarray(np.full((36, 36, 3), 200, np.uint8)).save(folder / "images" / "c.png")
    prepare_cache(cache, settings, acc, images)
    assert precompute(cache, ("image",), images, encoders, acc, batch=4, workers=0) == 1
    after = cache.read("image", "c.png")["y"]
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, encoders.latent_encoder.analyse(images[images.keys.index("c.png")]["image"]))


@pytest.mark.slow   # training
def test_flux_train_validation_files_do_not_collide(folder):
    # sub/b.png and sub__b.png are two images: each gets its own validation file.
    import shutil

    from gsc.train.trainer import train_adapter

    shutil.copy(folder / "images" / "a.png", folder / "images" / "sub__b.png")
    train_adapter(config(folder, steps=1, validate_every=1, validate_images=5, validate_steps=1))
    for step in ("original", "step-0000001"):
        written = sorted(p.relative_to(folder / "run" / "validation" / step).as_posix()
                         for p in (folder / "run" / "validation" / step).rglob("*.png"))
        assert written == ["a.jpg.png", "a.png.png", "c.png.png", "sub/b.png.png", "sub__b.png.png"], step


def test_flux_train_cli_options_are_the_config_fields(folder, monkeypatch):
    # One option per AdapterTrainConfig field, with its default: the CLI and the settings cannot drift.
    import dataclasses

    import gsc.train.trainer as trainer

    seen = []
    monkeypatch.setattr(trainer, "train_adapter", lambda cfg: seen.append(cfg) or
                        {"steps": 0, "first_loss": None, "last_loss": None, "adapter": "x"})
    result = CliRunner().invoke(cli(), ["train-adapter", "--data", str(folder / "images"), "--grad-accum", "3",
                                        "--no-resume", "--guidance", "2.5", "--gradient-checkpointing"])
    assert result.exit_code == 0, (result.output, result.exception)
    expected = AdapterTrainConfig(data=str(folder / "images"), grad_accum=3, resume=False, guidance=2.5,
                                  gradient_checkpointing=True)
    assert seen == [expected]
    from gsc.train.adapter_cli import options

    params = options().parameters
    assert list(params) == [f.name for f in dataclasses.fields(AdapterTrainConfig)]
    assert all(params[f.name].default.default == f.default for f in dataclasses.fields(AdapterTrainConfig)[1:])
