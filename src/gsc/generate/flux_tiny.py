"""``flux-tiny``: a FLUX pipeline in miniature with seeded random weights, for tests of the wiring.

Everything is built offline and deterministically from one seed, so that an encoding process and a
separate decoding process build the same model: the tokenizers from fixed character vocabularies
(no training, no files), the models in a fixed order under ``torch.manual_seed(seed)`` on the CPU in
float32. The shapes follow FLUX.1 (16-channel VAE at 1/8, 2×2 packing, T5 sequence + pooled CLIP,
guidance embedding as in FLUX.1-dev) with tiny widths. The ``flux-tiny`` generator (preset id 7) runs
them through the same pipeline and memory options as the ``flux`` generator.
"""

from __future__ import annotations

import string

import torch

from .base import GENERATORS

# Printable ASCII without whitespace: the pieces both tokenizers are built from.
_CHARS = [c for c in string.printable if not c.isspace()]

# Inner width 8 × 16 = 128 ≥ the 64 packed channels: narrower, the final LayerNorm caps how closely
# the model can fit a velocity, and an overfitting test would stall.
TINY_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=4, num_single_layers=4, attention_head_dim=16,
                        num_attention_heads=8, joint_attention_dim=32, pooled_projection_dim=32,
                        guidance_embeds=True, axes_dims_rope=[4, 6, 6])
TINY_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
                latent_channels=16, norm_num_groups=4, sample_size=64, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False)
TINY_MAX_SEQUENCE_LENGTH = 32


def tiny_t5_tokenizer():
    """Unigram over single characters (word-initial pieces carry SentencePiece's '▁')."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + c, -3.0) for c in _CHARS] + [(c, -4.0) for c in _CHARS]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_clip_tokenizer():
    """Byte-pair tokenizer with no merges: one token per character (word-final ones end in '</w>')."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in _CHARS + [c + "</w>" for c in _CHARS]:
        vocab.setdefault(c, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_components(seed: int = 0) -> dict:
    """The FluxPipeline components (scheduler, vae, text encoders, tokenizers, transformer), seeded."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(**TINY_TRANSFORMER)
        vae = AutoencoderKL(**TINY_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=77, projection_dim=32, bos_token_id=0, eos_token_id=1,
            pad_token_id=1))
        text_encoder_2 = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_2), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    models = dict(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, transformer=transformer)
    for m in models.values():
        m.eval().requires_grad_(False)
    return dict(scheduler=scheduler, tokenizer=tokenizer, tokenizer_2=tokenizer_2, **models)


def randomize_zero_layers(adapter, seed: int = 1, std: float = 0.05) -> None:
    """Give the adapter's zero-initialised projections seeded random weights.

    A freshly initialised adapter adds exactly zero, so the channels would not reach the image; the
    ``flux-tiny`` preset uses this (in place of trained weights) so that tests see the whole path.
    """
    net = adapter.controlnet
    layers = [net.controlnet_x_embedder, *net.controlnet_blocks, *net.controlnet_single_blocks]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * std)


@GENERATORS.register("flux-tiny")
def flux_tiny_generator(adapter: str | None = None, guidance: float = 3.5, seed: int = 0, adapter_seed: int = 1,
                        latent_channels: int = 320, dtype: str = "float32", offload: str = "none", fp8: bool = False,
                        vae_tiling: bool = False, device: str | None = "cpu"):
    """Seeded tiny FLUX; without ``adapter`` the adapter's zero layers get seeded random weights."""
    from .flux_adapter import FluxChannelAdapter
    from .flux_pipeline import FluxGenerator, build_pipeline, load_adapter, torch_dtype

    dt = torch_dtype(dtype)
    components = tiny_components(seed)
    if adapter:
        net = load_adapter(adapter)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + adapter_seed)
            net = FluxChannelAdapter.from_transformer(components["transformer"], latent_channels, condition_dim=32)
        randomize_zero_layers(net, seed=seed + adapter_seed)
        net.eval().requires_grad_(False)
    pipe = build_pipeline(components, net, dt, device, offload, fp8, vae_tiling)
    return FluxGenerator(pipe, guidance, TINY_MAX_SEQUENCE_LENGTH)
