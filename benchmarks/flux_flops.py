"""Count the FLOPs and parameters of the real FLUX.1 stack (+ the gsc adapter) for one image, on the
meta device: the published configurations are built without weights, and torch's FlopCounterMode
adds up every matmul, convolution and attention. Nothing runs on real data and no weights are needed,
so this works on any machine; it checks the hand arithmetic in docs/flux.md.

    python benchmarks/flux_flops.py --width 768 --height 512 [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

# FLUX.1-dev / schnell published configurations (black-forest-labs/FLUX.1-dev, diffusers layout).
TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                   num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                   guidance_embeds=True, axes_dims_rope=(16, 56, 56))
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
           latent_channels=16, norm_num_groups=32, scaling_factor=0.3611, shift_factor=0.1159,
           use_quant_conv=False, use_post_quant_conv=False)
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", is_encoder_decoder=False)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, projection_dim=768)


def count(fn) -> float:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        fn()
    return float(fc.get_total_flops())


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--text-tokens", type=int, default=512, help="T5 sequence length (FLUX.1-dev: 512)")
    ap.add_argument("--latent-channels", type=int, default=320)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from gsc.generate.flux_adapter import FluxChannelAdapter

    h, w, lt = args.height // 16, args.width // 16, args.text_tokens
    li = h * w
    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**TRANSFORMER)
        adapter = FluxChannelAdapter(latent_channels=args.latent_channels, **{
            k: TRANSFORMER[k] for k in ("in_channels", "attention_head_dim", "num_attention_heads",
                                        "joint_attention_dim", "pooled_projection_dim", "guidance_embeds",
                                        "axes_dims_rope")})
        vae = AutoencoderKL(**VAE)
        t5 = T5EncoderModel(T5Config(**T5_XXL))
        clip = CLIPTextModel(CLIPTextConfig(**CLIP_L))
        x = torch.randn(1, li, 64)
        txt = torch.randn(1, lt, 4096)
        pooled = torch.randn(1, 768)
        kw = dict(encoder_hidden_states=txt, pooled_projections=pooled, timestep=torch.ones(1),
                  img_ids=torch.zeros(li, 3), txt_ids=torch.zeros(lt, 3), guidance=torch.ones(1))
        grid, mask = torch.randn(1, args.latent_channels, h, w), torch.ones(1, args.latent_channels)
        latent = torch.randn(1, 16, 2 * h, 2 * w)
        t5_ids = torch.zeros(1, lt, dtype=torch.long)
        clip_ids = torch.zeros(1, 77, dtype=torch.long)

    rows = {
        "transformer (per step)": (params(transformer), count(lambda: transformer(hidden_states=x, **kw))),
        "adapter (per step)": (params(adapter), count(lambda: adapter(x, grid, mask, **kw))),
        "T5-XXL encoder (once)": (params(t5), count(lambda: t5(t5_ids))),
        "CLIP-L text (once)": (params(clip), count(lambda: clip(clip_ids))),
        "VAE decoder (once)": (params(vae.decoder), count(lambda: vae.decode(latent))),
    }
    print(f"FLUX.1 at {args.width}×{args.height}: {li} image tokens + {lt} text tokens")
    print(f"{'component':<26}{'params (B)':>12}{'TFLOPs':>10}")
    for name, (p, f) in rows.items():
        print(f"{name:<26}{p / 1e9:>12.3f}{f / 1e12:>10.3f}")
    step = rows["transformer (per step)"][1] + rows["adapter (per step)"][1]
    once = sum(rows[k][1] for k in rows if "once" in k)
    totals = {f"{steps} steps": steps * step + once for steps in (4, 28)}
    for name, f in totals.items():
        print(f"per image, {name:<15}{f / 1e12:>22.1f} TFLOPs")
    result = {"width": args.width, "height": args.height, "image_tokens": li, "text_tokens": lt,
              "components": {k: {"params": p, "flops": f} for k, (p, f) in rows.items()},
              "per_image_flops": totals}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
