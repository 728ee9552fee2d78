"""The flux-tiny generator: determinism (in and across processes), any C and index set at any size,
the condition reaching the image, adapter checkpoints, and refusal of mismatched requests."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from gsc.errors import GSCError, StreamError  # noqa: E402
from gsc.generate import GENERATORS, GenerationRequest  # noqa: E402
import gsc.generate.flux  # noqa: E402,F401  (registers flux)
import gsc.generate.flux_tiny  # noqa: E402,F401  (registers flux-tiny)

N = 320
SRC = str(Path(__file__).resolve().parents[1] / "src")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def generator():
    return GENERATORS.create("flux-tiny")


def request(c=2, height=40, width=56, seed=0, steps=2, caption="a red door in a stone wall", index_seed=0,
            value_seed=0):
    h, w = -(-height // 16), -(-width // 16)
    idx = sorted(torch.randperm(N, generator=torch.Generator().manual_seed(index_seed))[:c].tolist())
    values = torch.randint(-6, 7, (c, h, w), generator=torch.Generator().manual_seed(value_seed)).float()
    return GenerationRequest(caption=caption, channels=values, indices=idx, latent_channels=N, height=height,
                             width=width, seed=seed, steps=steps)


def test_flux_generator_same_seed_same_image_other_seed_other_image(generator):
    a = generator.generate(request(seed=7))
    b = generator.generate(request(seed=7))
    c = generator.generate(request(seed=8))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3


@pytest.mark.parametrize("c", [0, 1, 16])
@pytest.mark.parametrize("size", [(40, 56), (17, 33)])
def test_flux_generator_decodes_any_c_and_index_set_at_any_size(generator, c, size):
    height, width = size
    steps_seen = []
    for index_seed in (0, 1):
        image = generator.generate(request(c=c, height=height, width=width, index_seed=index_seed),
                                   progress=steps_seen.append)
        assert image.shape == (3, height, width)
        assert image.dtype == torch.float32 and torch.isfinite(image).all()
        assert image.min() >= 0 and image.max() <= 1
    assert steps_seen == [0, 1, 0, 1]


def test_flux_generator_channels_reach_the_image(generator):
    # C = 0 runs the base alone; sent channels go through the adapter, so their values and their
    # indices both change the image.
    base_only = generator.generate(request(c=0))
    one = generator.generate(request(c=1))
    other_values = generator.generate(request(c=1, value_seed=5))
    other_index = generator.generate(request(c=1, index_seed=9))
    for x in (one, other_values, other_index):
        assert (x - base_only).abs().mean() > 1e-4
    assert (one - other_values).abs().mean() > 1e-4
    assert (one - other_index).abs().mean() > 1e-4


def test_flux_generator_caption_reaches_the_image(generator):
    a = generator.generate(request(c=0, caption="a red door"))
    b = generator.generate(request(c=0, caption="a green field under a blue sky"))
    assert (a - b).abs().mean() > 1e-4


def test_flux_tiny_is_the_same_model_in_a_separate_process(generator, tmp_path):
    # An encoder process and a decoder process must build the same tiny model from the seed.
    req = request(c=3, seed=5)
    spec = {"caption": req.caption, "channels": req.channels.tolist(), "indices": req.indices,
            "height": req.height, "width": req.width, "seed": req.seed, "steps": req.steps}
    (tmp_path / "req.json").write_text(json.dumps(spec))
    code = (
        "import json, sys, torch\n"
        "torch.set_num_threads(1)\n"
        "import gsc.generate.flux_tiny\n"
        "from gsc.generate import GENERATORS, GenerationRequest\n"
        "s = json.load(open(sys.argv[1]))\n"
        "r = GenerationRequest(s['caption'], torch.tensor(s['channels']), s['indices'], 320, s['height'],"
        " s['width'], s['seed'], s['steps'])\n"
        "torch.save(GENERATORS.create('flux-tiny').generate(r), sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "req.json"), str(tmp_path / "out.pt")], check=True,
                   env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=120)
    assert torch.equal(torch.load(tmp_path / "out.pt"), generator.generate(req))


def test_flux_tiny_loads_an_adapter_checkpoint(tmp_path):
    from gsc.generate.flux_adapter import FluxChannelAdapter
    from gsc.generate.flux_tiny import randomize_zero_layers, tiny_components

    adapter = FluxChannelAdapter.from_transformer(tiny_components(0)["transformer"], N, condition_dim=16)
    randomize_zero_layers(adapter, seed=11)
    adapter.save_pretrained(str(tmp_path / "adapter"))
    g1 = GENERATORS.create("flux-tiny", adapter=str(tmp_path / "adapter"))
    g2 = GENERATORS.create("flux-tiny", adapter=str(tmp_path / "adapter"))
    assert g1.pipe.adapter.config.condition_dim == 16
    assert torch.equal(g1.generate(request(c=2)), g2.generate(request(c=2)))
    with pytest.raises(GSCError, match="no FLUX adapter"):
        GENERATORS.create("flux-tiny", adapter=str(tmp_path / "missing"))


def test_flux_generator_refuses_mismatched_requests(generator):
    bad_grid = request(c=2, height=40, width=56)
    bad_grid.channels = bad_grid.channels[:, :2, :2]
    with pytest.raises(StreamError, match="does not match"):
        generator.generate(bad_grid)
    other_n = request(c=1)
    other_n.latent_channels = 32
    with pytest.raises(StreamError, match="latent channels"):
        generator.generate(other_n)
    with pytest.raises(GSCError, match="steps"):
        generator.generate(request(steps=0))


def test_flux_generator_memory_options(generator):
    # Offload moves weights, not numbers: model and group offload (diffusers' own) give the same image on the
    # same device, with their hooks in place. fp8 storage, tiling (the tiny VAE tiles above 64 px) and bf16
    # change the numbers a little: measured mean |Δ| 0.038 (tiling, seams up to 0.48) and 0.0035 (bf16),
    # where another seed differs by 0.15.
    req = request(c=2, height=96, width=80)
    plain = generator.generate(req)
    model = GENERATORS.create("flux-tiny", offload="model")
    assert model.pipe._all_hooks  # accelerate's hooks are in place
    assert torch.equal(model.generate(req), plain)
    group = GENERATORS.create("flux-tiny", offload="group")
    assert group.pipe.transformer.transformer_blocks[0]._diffusers_hook.get_hook("group_offloading") is not None
    assert group.pipe.adapter.controlnet.transformer_blocks[0]._diffusers_hook.get_hook("group_offloading")
    assert torch.equal(group.generate(req), plain)
    fp8 = GENERATORS.create("flux-tiny", fp8=True)
    for net in (fp8.pipe.transformer, fp8.pipe.adapter.controlnet):
        assert net.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn
    assert fp8.pipe.adapter.condition_embedder[0].weight.dtype == torch.float32
    stored = fp8.generate(req)
    assert 0 < (stored - plain).abs().mean() < 0.05
    for kwargs, tolerance in (({"vae_tiling": True}, 0.08), ({"dtype": "bf16"}, 0.02)):
        image = GENERATORS.create("flux-tiny", **kwargs).generate(req)
        assert image.shape == (3, 96, 80) and image.dtype == torch.float32
        difference = (image - plain).abs().mean().item()
        assert 0 < difference < tolerance, (kwargs, difference)   # the option acts, and the image stays
    assert GENERATORS.create("flux-tiny", dtype="bf16").pipe.transformer.dtype == torch.bfloat16
    assert GENERATORS.create("flux-tiny", vae_tiling=True).pipe.vae.use_tiling


def test_flux_generator_sequential_offload_reaches_diffusers(monkeypatch):
    # Per-layer offload only makes sense towards an accelerator (and accelerate's hooks break on "cpu:0"):
    # on the CPU it is one clear error; elsewhere the pipeline's enable_sequential_cpu_offload gets the device.
    from gsc.generate.flux_pipeline import FluxChannelPipeline, apply_memory_options

    with pytest.raises(GSCError, match="offload=sequential .* the device is the CPU"):
        GENERATORS.create("flux-tiny", offload="sequential")
    calls = []
    monkeypatch.setattr(FluxChannelPipeline, "enable_sequential_cpu_offload",
                        lambda self, device=None: calls.append(device))
    pipe = GENERATORS.create("flux-tiny").pipe
    apply_memory_options(pipe, "meta", offload="sequential")  # any non-CPU device that exists here
    assert calls == [torch.device("meta")]


def test_flux_generator_refuses_bad_memory_options():
    for kwargs, match in (({"dtype": "fp16"}, "FLUX overflows in float16"), ({"dtype": "float8"}, "unknown dtype"),
                          ({"offload": "disk"}, "unknown offload"), ({"device": "cuda:3"}, "not usable here")):
        with pytest.raises(GSCError, match=match):
            GENERATORS.create("flux-tiny", **kwargs)


def test_flux_generator_guidance_reaches_the_model(generator):
    # flux-tiny embeds guidance as FLUX.1-dev does, so the value changes the image; a base without a
    # guidance embedding (FLUX.1-schnell) refuses a non-zero value.
    req = request(c=1)
    other = GENERATORS.create("flux-tiny", guidance=7.0)
    assert other.guidance == 7.0
    assert (other.generate(req) - generator.generate(req)).abs().mean() > 1e-4
    from gsc.generate.flux_pipeline import FluxGenerator

    generator.pipe.transformer.config.guidance_embeds = False  # as FLUX.1-schnell's config says
    try:
        with pytest.raises(GSCError, match="no guidance embedding"):
            FluxGenerator(generator.pipe, guidance=3.5)
        assert FluxGenerator(generator.pipe, guidance=0.0).guidance == 0.0
    finally:
        generator.pipe.transformer.config.guidance_embeds = True


def test_flux_generator_loads_a_local_base_folder(generator, tmp_path):
    # The `flux` generator's real loading path (FluxPipeline.from_pretrained + adapter folder), fed the
    # tiny components saved to disk, must reproduce flux-tiny exactly; a missing base is one clear error.
    from diffusers import FluxPipeline

    from gsc.generate.flux_tiny import tiny_components

    FluxPipeline(**tiny_components(0)).save_pretrained(str(tmp_path / "base"))
    generator.pipe.adapter.save_pretrained(str(tmp_path / "adapter"))
    real = GENERATORS.create("flux", model=str(tmp_path / "base"), adapter=str(tmp_path / "adapter"),
                             dtype="float32", guidance=3.5, max_sequence_length=32)
    req = request(c=3, seed=2)
    assert torch.equal(real.generate(req), generator.generate(req))
    with pytest.raises(GSCError, match="cannot load the FLUX base"):
        GENERATORS.create("flux", model=str(tmp_path / "missing"), dtype="float32")
    caption_only = GENERATORS.create("flux", model=str(tmp_path / "base"), dtype="float32",
                                     max_sequence_length=32)
    assert caption_only.generate(request(c=0)).shape == (3, 40, 56)
    with pytest.raises(GSCError, match="no adapter is loaded"):
        caption_only.generate(request(c=1))
