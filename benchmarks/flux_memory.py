"""Estimate the GPU memory and time per image of each `gsc decode` memory option on the real FLUX.1 stack.

Nothing runs on a GPU and no weights are needed: the published configurations are built on the meta
device, the memory options are applied the way gsc applies them (diffusers' layerwise fp8 casting with
the models' own skip patterns), and the resident bytes are added up from the parameters' dtypes. Then:

- weights on the GPU, per phase (caption encoding, denoising loop, VAE decode), from how each mode
  moves them: all resident (none); one model at a time (model); a model's blocks one at a time plus the
  next one prefetched, around its remaining parameters (group); the largest single layer (sequential);
- activations from their sizes at the image size (the largest live tensors of a block, see ``activations``);
- time: FLOPs (benchmarks/flux_flops.py's counter) at a sustained throughput, plus the host-to-device
  copies at a bus bandwidth; group offload overlaps its copies with compute, sequential does not.

    python benchmarks/flux_memory.py --width 768 --height 512 [--tflops 80] [--bus 20] [--json out.json]

These are estimates, not measurements: docs/flux.md says so where it quotes them.
"""

from __future__ import annotations

import argparse
import json

import torch

from flux_flops import CLIP_L, T5_XXL, TRANSFORMER, VAE, count

GB = 1e9
OPTIONS = ["none", "none + fp8", "model", "model + fp8", "group", "group + fp8", "sequential"]


def nbytes(module, recurse: bool = True) -> int:
    tensors = list(module.parameters(recurse=recurse)) + list(module.buffers(recurse=recurse))
    return sum(t.numel() * t.element_size() for t in tensors)


def groups(module, block_modules=()) -> tuple[int, int]:
    """diffusers' block-level group offloading: (bytes of the largest block, bytes of everything else).

    Children that are ModuleList/Sequential are split into one-block groups; children named in
    ``block_modules`` (a model's ``_group_offload_block_modules``) are split the same way, recursively.
    """
    largest, rest = 0, nbytes(module, recurse=False)
    for name, child in module.named_children():
        if name in block_modules:
            big, other = groups(child, getattr(child, "_group_offload_block_modules", None) or ())
            largest, rest = max(largest, big), rest + other
        elif isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            largest = max([largest] + [nbytes(b) for b in child])
        else:
            rest += nbytes(child)
    return largest, rest


def largest_layer(module) -> int:
    """Sequential offload moves each module's own parameters just before it runs."""
    return max(nbytes(m, recurse=False) for m in module.modules())


def activations(li: int, lt: int, width: int, height: int) -> dict:
    """Bytes of the largest live activations per phase, in bf16 (2 B), at this image size."""
    d, L = 3072, li + lt
    single_block = L * (d + d + 4 * d + 3 * d + d + 5 * d + d) * 2  # in, norm, MLP, QKV, attention, concat, out
    residuals = 6 * li * d * 2  # the adapter's six residuals, held through the base's forward
    t5 = (lt * (4096 * 3 + 10240 * 2) + 64 * lt * lt) * 2  # hidden states, gated FFN, eager attention scores
    vae = 5 * width * height * 128 * 2  # a full-resolution 128-channel resnet: input, two convs, norms
    return {"text": t5, "loop": single_block + residuals, "decode": vae}


def build(latent_channels: int):
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from gsc.generate.flux_adapter import FluxChannelAdapter

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16, as loaded with dtype=bfloat16
    with torch.device("meta"):
        models = {
            "transformer": FluxTransformer2DModel(**TRANSFORMER),
            "adapter": FluxChannelAdapter(latent_channels=latent_channels, **{
                k: TRANSFORMER[k] for k in ("in_channels", "attention_head_dim", "num_attention_heads",
                                            "joint_attention_dim", "pooled_projection_dim", "guidance_embeds",
                                            "axes_dims_rope")}),
            "t5": T5EncoderModel(T5Config(**T5_XXL)),
            "clip": CLIPTextModel(CLIPTextConfig(**CLIP_L)),
            "vae": AutoencoderKL(**VAE),
        }
    torch.set_default_dtype(default)
    return models


def estimate(option: str, models: dict, act: dict) -> dict:
    """Peak weights + activations on the GPU per phase, and the bytes copied host → device per image."""
    tr, ad, t5, clip, vae = (models[k] for k in ("transformer", "adapter", "t5", "clip", "vae"))
    mode = option.split(" ")[0]
    b = {k: nbytes(m) for k, m in models.items()}
    if mode == "none":
        everything = sum(b.values())
        weights = {"text": everything, "loop": everything, "decode": everything}
        moved = {"once": 0, "per_step": 0, "back": 0}
    elif mode == "model":
        weights = {"text": max(b["clip"], b["t5"]), "loop": b["transformer"] + b["adapter"], "decode": b["vae"]}
        once = b["clip"] + b["t5"] + b["transformer"] + b["adapter"] + b["vae"]
        moved = {"once": once, "per_step": 0, "back": once}  # model.to("cpu") copies every model back
    elif mode == "group":
        g = {k: groups(m, getattr(m, "_group_offload_block_modules", None) or ()) for k, m in models.items()}
        peak = {k: rest + 2 * big for k, (big, rest) in g.items()}  # the running block and the prefetched one
        weights = {"text": max(peak["clip"], peak["t5"]), "loop": max(peak["transformer"], peak["adapter"]),
                   "decode": peak["vae"]}
        # Offloading back is free: the pinned CPU copy stays; every step streams the loop's weights in again.
        moved = {"once": b["clip"] + b["t5"] + b["vae"], "per_step": b["transformer"] + b["adapter"], "back": 0}
    else:  # sequential
        weights = {"text": max(largest_layer(clip), largest_layer(t5)),
                   "loop": max(largest_layer(tr), largest_layer(ad)), "decode": largest_layer(vae)}
        moved = {"once": b["clip"] + b["t5"] + b["vae"], "per_step": b["transformer"] + b["adapter"], "back": 0}
    upcast = 0
    if option.endswith("fp8"):  # layerwise casting holds one layer's weight in bf16 at a time
        upcast = max(m.weight.numel() * 2 for model in (tr, ad) for m in model.modules()
                     if isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float8_e4m3fn)
    phases = {k: weights[k] + act[k] + (upcast if k == "loop" else 0) for k in weights}
    return {"weights": weights, "phases": phases, "peak": max(phases.values()), "moved": moved}


def seconds(option: str, est: dict, flops: dict, steps: int, tflops: float, bus: float, models: dict) -> float:
    """Compute at ``tflops``; copies at ``bus`` GB/s (half that for sequential's synchronous, unpinned ones)."""
    step_compute = (flops["transformer"] + flops["adapter"]) / (tflops * 1e12)
    once_compute = (flops["t5"] + flops["clip"] + flops["vae"]) / (tflops * 1e12)
    if option.endswith("fp8"):  # each fp8 weight is read (1 B) and written and read again in bf16 (4 B) per step
        fp8 = sum(p.numel() for m in ("transformer", "adapter") for p in models[m].parameters()
                  if p.dtype == torch.float8_e4m3fn)
        step_compute += 5 * fp8 / (1000 * GB)  # ≈ 1 TB/s of GPU memory bandwidth
    m = est["moved"]
    mode = option.split(" ")[0]
    rate = bus * GB / (2 if mode == "sequential" else 1)
    copy_once = (m["once"] + m["back"]) / rate
    copy_step = m["per_step"] / rate
    if mode == "group":  # prefetching on a CUDA stream overlaps the copies with compute
        return once_compute + copy_once + steps * max(step_compute, copy_step)
    return once_compute + copy_once + steps * (step_compute + copy_step)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--latent-channels", type=int, default=320)
    ap.add_argument("--tflops", type=float, default=80.0, help="sustained bf16 TFLOP/s of the GPU")
    ap.add_argument("--bus", type=float, default=20.0, help="host-to-device GB/s (PCIe 4.0 x16, pinned)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    h, w, lt = args.height // 16, args.width // 16, args.text_tokens
    li = h * w
    act = activations(li, lt, args.width, args.height)
    models = build(args.latent_channels)
    with torch.device("meta"):
        x, txt, pooled = torch.randn(1, li, 64), torch.randn(1, lt, 4096), torch.randn(1, 768)
        kw = dict(encoder_hidden_states=txt, pooled_projections=pooled, timestep=torch.ones(1),
                  img_ids=torch.zeros(li, 3), txt_ids=torch.zeros(lt, 3), guidance=torch.ones(1))
        grid, mask = torch.randn(1, args.latent_channels, h, w), torch.ones(1, args.latent_channels)
        x, txt, pooled, grid, mask = (t.to(torch.bfloat16) for t in (x, txt, pooled, grid, mask))
        kw = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in kw.items()}
        flops = {"transformer": count(lambda: models["transformer"](hidden_states=x, **kw)),
                 "adapter": count(lambda: models["adapter"](x, grid, mask, **kw)),
                 "t5": count(lambda: models["t5"](torch.zeros(1, lt, dtype=torch.long))),
                 "clip": count(lambda: models["clip"](torch.zeros(1, 77, dtype=torch.long))),
                 "vae": count(lambda: models["vae"].decode(torch.randn(1, 16, 2 * h, 2 * w, dtype=torch.bfloat16)))}
    rows = {}
    for option in OPTIONS:
        models = build(args.latent_channels)
        if option.endswith("fp8"):  # as gsc's fp8=True: the transformer's and the adapter's weights
            for m in ("transformer", "adapter"):
                models[m].enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
        est = estimate(option, models, act)
        rows[option] = {"peak_gb": est["peak"] / GB, **{f"{k}_gb": v / GB for k, v in est["phases"].items()},
                        "dev_28_steps_s": seconds(option, est, flops, 28, args.tflops, args.bus, models),
                        "schnell_4_steps_s": seconds(option, est, flops, 4, args.tflops, args.bus, models)}
    print(f"FLUX.1 at {args.width}×{args.height}, {args.tflops:g} TFLOP/s sustained, {args.bus:g} GB/s to the GPU")
    print(f"{'option':<14}{'peak GB':>9}{'text':>7}{'loop':>7}{'decode':>8}{'dev 28 s':>10}{'schnell 4 s':>13}")
    for option, r in rows.items():
        print(f"{option:<14}{r['peak_gb']:>9.1f}{r['text_gb']:>7.1f}{r['loop_gb']:>7.1f}{r['decode_gb']:>8.1f}"
              f"{r['dev_28_steps_s']:>10.1f}{r['schnell_4_steps_s']:>13.1f}")
    result = {"width": args.width, "height": args.height, "tflops": args.tflops, "bus_gb_s": args.bus,
              "activations_gb": {k: v / GB for k, v in act.items()}, "options": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
