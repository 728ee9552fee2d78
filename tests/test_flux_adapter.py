"""The FLUX adapter on tiny seeded models: zero-init identity, token mapping, training only the adapter,
overfitting one image, save → load."""

import copy
import random

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import FluxPipeline  # noqa: E402

from gsc.generate.flux_pipeline import load_adapter  # noqa: E402
from gsc.generate.flux_adapter import (FluxChannelAdapter, latent_image_ids, pack_condition, pack_latents,  # noqa: E402
                                       unpack_latents)
from gsc.generate.flux_tiny import randomize_zero_layers, tiny_components  # noqa: E402
from gsc.train.adapter import adapter_loss  # noqa: E402

N = 320


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base():
    return tiny_components(0)["transformer"]


def inputs(h=2, w=3, batch=1, seed=0):
    """Random packed x_t, text embeddings, ids and a C = 3 condition for an (16h)×(16w) image."""
    g = torch.Generator().manual_seed(seed)
    grid, mask = torch.zeros(batch, N, h, w), torch.zeros(batch, N)
    idx = [5, 77, 300]
    grid[:, idx] = torch.randn(batch, 3, h, w, generator=g) * 3
    mask[:, idx] = 1
    return dict(
        hidden_states=torch.randn(batch, h * w, 64, generator=g), grid=grid, mask=mask,
        encoder_hidden_states=torch.randn(batch, 7, 32, generator=g),
        pooled_projections=torch.randn(batch, 32, generator=g), timestep=torch.full((batch,), 0.6),
        img_ids=latent_image_ids(h, w),
        txt_ids=torch.zeros(7, 3), guidance=torch.full((batch,), 3.5))


def base_kwargs(x):
    return {k: v for k, v in x.items() if k not in ("grid", "mask")}


@torch.no_grad()
def test_flux_adapter_zero_init_gives_exactly_the_base(base):
    adapter = FluxChannelAdapter.from_transformer(base, N)
    x = inputs()
    blocks, singles = adapter(**x)
    assert len(blocks) == 4 and len(singles) == 2  # the paper's M = 4, S = 2
    plain = base(**base_kwargs(x), return_dict=False)[0]
    with_adapter = base(**base_kwargs(x), controlnet_block_samples=blocks, controlnet_single_block_samples=singles,
                        return_dict=False)[0]
    assert torch.equal(plain, with_adapter)
    # The same wiring with non-zero projections does change the output: the test can fail.
    randomize_zero_layers(adapter)
    blocks, singles = adapter(**x)
    moved = base(**base_kwargs(x), controlnet_block_samples=blocks, controlnet_single_block_samples=singles,
                 return_dict=False)[0]
    assert (moved - plain).abs().max() > 1e-3


def test_flux_adapter_starts_as_a_copy_of_the_base_blocks(base):
    adapter = FluxChannelAdapter.from_transformer(base, N)
    for mine, theirs in zip(adapter.controlnet.transformer_blocks, base.transformer_blocks):
        for (k, a), (_, b) in zip(mine.state_dict().items(), theirs.state_dict().items()):
            assert torch.equal(a, b), k
    assert torch.equal(adapter.controlnet.x_embedder.weight, base.x_embedder.weight)


def test_flux_adapter_token_mapping_matches_flux_packing():
    # Latent position (i, j) of an (h, w) grid must land on the token whose position id is (0, i, j),
    # in the order FluxPipeline packs the VAE latent (2×2 patches, row-major).
    h, w = 3, 5
    grid = torch.zeros(1, 2, h, w)
    grid[0, 0] = torch.arange(h)[:, None].float().expand(h, w)    # channel 0 holds the row
    grid[0, 1] = torch.arange(w)[None, :].float().expand(h, w)    # channel 1 holds the column
    tokens = pack_condition(grid, torch.tensor([[1.0, 0.0]]))
    ids = FluxPipeline._prepare_latent_image_ids(1, h, w, "cpu", torch.float32)
    assert tokens.shape == (1, h * w, 4)
    assert torch.equal(tokens[0, :, 0], ids[:, 1]) and torch.equal(tokens[0, :, 1], ids[:, 2])
    assert torch.equal(tokens[0, :, 2:], torch.tensor([1.0, 0.0]).expand(h * w, 2))  # the mask on every token
    # The same order as the packed VAE latent: a latent that is constant per 2×2 patch gives per-token values.
    lat = grid[:, :1].repeat_interleave(2, -2).repeat_interleave(2, -1).expand(1, 16, 2 * h, 2 * w)
    packed = FluxPipeline._pack_latents(lat.contiguous(), 1, 16, 2 * h, 2 * w)
    assert torch.equal(packed[0, :, 0], tokens[0, :, 0])


def test_flux_adapter_packing_helpers_equal_diffusers_own():
    # gsc packs with its own public helpers; diffusers' (private) ones are the reference.
    h, w = 3, 5
    lat = torch.randn(2, 16, 2 * h, 2 * w, generator=torch.Generator().manual_seed(0))
    packed = pack_latents(lat)
    assert torch.equal(packed, FluxPipeline._pack_latents(lat, 2, 16, 2 * h, 2 * w))
    assert torch.equal(unpack_latents(packed, h, w), FluxPipeline._unpack_latents(packed, 16 * h, 16 * w, 8))
    assert torch.equal(unpack_latents(packed, h, w), lat)
    assert torch.equal(latent_image_ids(h, w), FluxPipeline._prepare_latent_image_ids(1, h, w, "cpu", torch.float32))


def test_flux_adapter_training_step_changes_only_the_adapter(base):
    base = copy.deepcopy(base)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    adapter = FluxChannelAdapter.from_transformer(base, N).train()
    adapter_before = {k: v.clone() for k, v in adapter.state_dict().items()}
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    x = inputs(batch=2)
    loss = adapter_loss(base, adapter, x["hidden_states"], x["grid"], x["mask"], x["encoder_hidden_states"],
                        x["pooled_projections"], torch.tensor([0.3, 0.8]), torch.randn(2, 6, 64), 3.5)
    loss.backward()
    assert all(p.grad is None for p in base.parameters())
    heads = [p.grad for p in adapter.controlnet.controlnet_blocks.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in heads)
    opt.step()
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    changed = [k for k, v in adapter.state_dict().items() if not torch.equal(v, adapter_before[k])]
    assert any(k.startswith("controlnet.controlnet_blocks") for k in changed)


@pytest.mark.slow
def test_flux_adapter_overfits_one_image(base):
    # One 32×32 image and two fixed (t, ε) draws: the adapter alone (base frozen) must drive the
    # rectified-flow loss down by at least 8× in 40 Adam steps (measured: 1.43 → 0.106, 13×).
    from gsc.generate.flux_pipeline import FluxChannelPipeline
    from gsc.latent.encoders import LATENT_ENCODERS
    from gsc.train.adapter import Encoders, draw_condition

    components = tiny_components(0)
    encoders = Encoders(FluxChannelPipeline(**components), LATENT_ENCODERS.create(
        "mbt2018-mean", quality=8, random_init_seed=0), torch.device("cpu"), 32)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    b = encoders(image, ["a red door in a stone wall"])
    grid, mask = draw_condition(b["y"], b["small"], 4, 1.0, 0.0, [random.Random(0)])
    torch.manual_seed(0)
    adapter = FluxChannelAdapter.from_transformer(components["transformer"], N, condition_dim=32)
    opt = torch.optim.Adam(adapter.parameters(), lr=2e-3)
    k = 2
    noise = torch.randn((k, *b["x0"].shape[1:]), generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.3, 0.8])
    args = (b["x0"].expand(k, -1, -1), grid.expand(k, -1, -1, -1), mask.expand(k, -1),
            b["prompt_embeds"].expand(k, -1, -1), b["pooled"].expand(k, -1), t, noise, 3.5)
    losses = []
    for _ in range(40):
        loss = adapter_loss(components["transformer"], adapter, *args)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] / losses[-1] >= 8.0, losses[::8]


@torch.no_grad()
def test_flux_adapter_save_load_gives_the_same_outputs(base, tmp_path):
    adapter = FluxChannelAdapter.from_transformer(base, N, condition_dim=48)
    randomize_zero_layers(adapter, seed=3)
    adapter.save_pretrained(str(tmp_path / "adapter"), safe_serialization=True)
    assert (tmp_path / "adapter" / "diffusion_pytorch_model.safetensors").exists()
    loaded = load_adapter(tmp_path / "adapter")
    assert loaded.config.condition_dim == 48 and loaded.config.latent_channels == N
    x = inputs(seed=4)
    # Equal up to float rounding: BLAS may pick other kernels for safetensors' memory-mapped weights
    # (1.8e-7 seen); a wrong or partial load differs by orders of magnitude more.
    for a, b in zip(adapter(**x), loaded(**x)):
        for u, v in zip(a, b):
            torch.testing.assert_close(v, u, rtol=1e-5, atol=1e-5)
    assert any(p.abs().sum() > 0 for n, p in loaded.named_parameters() if "controlnet_blocks" in n)
