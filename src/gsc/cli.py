"""The ``gsc`` command line (typer + rich).

Heavy stacks (torch, diffusers, transformers) are imported inside the commands, so ``gsc --help``
and ``gsc info`` stay fast. User mistakes and hostile streams print one line and exit non-zero.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import GSCError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Generative semantic coding: images below 0.01 bpp from a caption and a few latent channels.")

# Modules that add their own commands with ``register(app)``.
COMMAND_MODULES: list[str] = ["gsc.train.adapter_cli", "gsc.eval.commands"]


MAX_PIXELS_HELP = ("Decode budget: the largest image accepted, in pixels (default 16777216 = 2^24); also scales "
                   "the entropy decoder's work limit. Lift it only for a trusted sender.")
MAX_STEPS_HELP = "Decode budget: the most sampling steps accepted (default: the preset's, e.g. lite 32)."


def _echo_err(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {message}", markup=True)


def _indices(indices: list[int]) -> str:
    """[0, 1, …, 51] as "0–51": lite sends a prefix of its bands."""
    if len(indices) > 3 and indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}–{indices[-1]}"
    return str(indices)


def _read_stream(path: Path) -> bytes:
    from .image import read_regular_file
    from .format.container import MAX_STREAM_BYTES

    return read_regular_file(path, MAX_STREAM_BYTES, "a .gsc stream")


def _read_parts(paths: list[Path]) -> list[bytes]:
    """A stream and its refinement parts, within the format's size limit all together."""
    from .format.container import MAX_STREAM_BYTES

    parts = []
    for path in paths:
        parts.append(_read_stream(path))
        if sum(map(len, parts)) > MAX_STREAM_BYTES:
            raise GSCError(f"the parts together exceed the format's limit of {MAX_STREAM_BYTES} bytes")
    return parts


@app.command()
def encode(
    image: Path = typer.Argument(..., help="Image file (PNG, JPEG, …; any mode and size ≥ 16×16)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .gsc stream."),
    channels: Optional[int] = typer.Option(None, "-c", "--channels", help="C: latent channels to send (0 = caption "
                                           "only; lite: the thumbnail's first C DCT bands, 1..64). Default: chosen "
                                           "by the sender under --max-bpp, else 1 (lite: all bands, 0.01 bpp)."),
    caption: Optional[str] = typer.Option(None, "--caption", help="Caption text to send."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="JSON mapping image file name → caption."),
    captioner: Optional[str] = typer.Option(None, "--captioner", help="none | given | qwen2.5-vl (default: preset's)."),
    preset: str = typer.Option("lite", "--preset", help="lite | flux-dev | flux-schnell | flux-tiny."),
    selection: Optional[str] = typer.Option(None, "--selection", help="ordered | ssim | ssim-color | ssim-abs | "
                                            "ssim-full | det-ssim | energy | random (default: the preset's; lite: "
                                            "ordered)."),
    step: float = typer.Option(1.0, "--step", help="Latent quantization step Δ (the finest tried under --max-bpp; "
                               "flux presets): one of gsc.format.tables.STEPS, 0.5 · 2^(k/4) to 4 decimals "
                               "(0.5 … 6.7272). lite picks its steps itself."),
    max_bpp: Optional[float] = typer.Option(None, "--max-bpp", help="Bit budget for the whole stream. Without "
                                            "--channels the sender picks C and Δ (the best it measures that "
                                            "fits); with --channels it coarsens Δ until the stream fits."),
    layers: Optional[str] = typer.Option(None, "--layers", help="B1,B2,…,B: write layers, the stream up to "
                                         "layer i a whole stream of at most Bi bpp (flux presets: each layer "
                                         "adds the next channels; lite sends one layer)."),
    caption_policy: str = typer.Option("keep", "--caption-policy", help="keep | drop | auto: send the caption, "
                                       "or not (its bytes go to the image), or drop it where it would take more "
                                       "than 15 % of --max-bpp."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Decoder seed to write in the stream."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Decoder sampling steps to write in the stream."),
    latent_checkpoint: Optional[Path] = typer.Option(None, "--latent-checkpoint",
                                                     help="Local CompressAI checkpoint (flux presets)."),
    captioner_model: Optional[str] = typer.Option(None, "--captioner-model",
                                                  help="Qwen2.5-VL: HF id or local folder (qwen2.5-vl captioner)."),
    device: Optional[str] = typer.Option(None, "--device", help="Captioner device, e.g. cuda:1 (qwen2.5-vl; "
                                         "default: cuda when present)."),
    caption_tokens: Optional[int] = typer.Option(None, "--caption-tokens",
                                                 help="Most tokens the captioner writes (qwen2.5-vl; default 60)."),
):
    """Compress IMAGE into a .gsc stream."""
    from .image import check_output, load_image, write_atomic

    check_output(output, image)
    x = load_image(image)
    from .codec import Codec

    codec = Codec.from_options(preset, captioner, caption, captions, selection, latent_checkpoint,
                               {"model": captioner_model, "device": device, "max_new_tokens": caption_tokens})
    data = codec.encode(x, channels=channels, image_name=image.name, step=step, seed=seed, steps=steps,
                        max_bpp=max_bpp, caption_policy=caption_policy, layers=_budgets(layers))
    write_atomic(output, lambda f: f.write(data))
    _report_written(codec, output, data)


def _budgets(layers: str | None) -> list[float] | None:
    """--layers B1,B2,… as floats (GSCError on anything else)."""
    if layers is None:
        return None
    try:
        return [float(b) for b in layers.split(",")]
    except ValueError:
        raise GSCError(f"--layers takes bpp values separated by commas, e.g. 0.005,0.01; got {layers!r}") from None


def _report_written(codec, output: Path, data: bytes) -> None:
    info = codec.summary(data)
    typer.echo(f"{output}: {info['total_bytes']} bytes, {info['bpp']:.5f} bpp "
               f"(header {info['header_bytes']}, caption {info['caption_bytes']}, latent {info['latent_bytes']}; "
               f"C={info['channels']} {_indices(info['indices'])}, step {info['step']}"
               f"{'; %d layers' % len(info['layers']) if len(info['layers']) > 1 else ''})")
    if info["decode_refused"]:
        print(f"gsc: note: a receiver with the default limits refuses this stream: {info['decode_refused']}",
              file=sys.stderr)


@app.command()
def decode(
    streams: list[Path] = typer.Argument(..., help="Input .gsc stream, then any refinement parts of it "
                                         "(gsc refine), in order."),
    output: Path = typer.Option(..., "-o", "--output", help="Output image (PNG)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="Trained FLUX adapter folder (flux presets)."),
    model: Optional[str] = typer.Option(None, "--model", help="FLUX base: HF id or local folder (flux presets)."),
    device: Optional[str] = typer.Option(None, "--device", help="e.g. cuda:1 (flux presets; default: cuda when "
                                         "present)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="bf16 | fp32 (flux presets; default bf16)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance embedding (flux-dev; default 3.5)."),
    offload: Optional[str] = typer.Option(None, "--offload", help="none | model | sequential | group: diffusers' "
                                          "CPU offloading (flux presets; docs/flux.md has the memory table)."),
    fp8: bool = typer.Option(False, "--fp8", help="Store transformer and adapter weights in fp8 (flux presets)."),
    vae_tiling: bool = typer.Option(False, "--vae-tiling", help="VAE tiling (flux presets)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help=MAX_PIXELS_HELP),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help=MAX_STEPS_HELP),
    strict: bool = typer.Option(False, "--strict", help="Refuse a cut or damaged stream instead of decoding "
                                "what passed its checks."),
):
    """Rebuild an image from a .gsc stream (the generator named by the stream's preset). A cut or damaged
    stream decodes from the sections that pass their checks, and one line says what was decoded."""
    from rich.progress import Progress

    from .codec import Codec
    from .image import check_output, save_image

    for stream in streams:
        check_output(output, stream)
    data = _read_parts(streams)
    options = {"adapter": str(adapter) if adapter else None, "model": model, "device": device, "dtype": dtype,
               "guidance": guidance, "offload": offload, "fp8": fp8 or None, "vae_tiling": vae_tiling or None}
    codec = Codec(generator_kwargs={k: v for k, v in options.items() if v is not None},
                  max_pixels=max_pixels, max_steps=max_steps)
    codec.check_budget(data)   # from the header, before any decoding work
    payload = codec.read(data, strict)
    with Progress(transient=True, disable=quiet) as bar:
        task = bar.add_task(f"decoding ({payload.preset}, {payload.steps} steps)", total=payload.steps)
        image, report = codec.decode_report(data, progress=lambda i: bar.update(task, completed=i + 1),
                                            strict=strict)
    save_image(image, output)
    typer.echo(f"{output}: {payload.width}×{payload.height}")
    if not report.intact or report.header_fixed is not None:
        print(f"gsc: {report.line()}", file=sys.stderr)


@app.command()
def info(
    streams: list[Path] = typer.Argument(..., help="Input .gsc stream, then any refinement parts of it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help=MAX_PIXELS_HELP),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help=MAX_STEPS_HELP),
):
    """Show what a stream carries, what each part costs, and whether decode would accept it (never generates)."""
    from .codec import Codec

    d = Codec(max_pixels=max_pixels, max_steps=max_steps).info(_read_parts(streams))
    if as_json:
        typer.echo(json.dumps(d, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(show_header=False, title=" + ".join(map(str, streams)))
    for k, v in d.items():
        t.add_row(k, f"{v:.5f}" if isinstance(v, float) else str(v))
    Console().print(t)


@app.command()
def refine(
    image: Path = typer.Argument(..., help="The image whose stream was sent."),
    sent: list[Path] = typer.Argument(..., help="The stream already sent (and any refinement parts of it)."),
    output: Path = typer.Option(..., "-o", "--output", help="The refinement part to write (.gsc)."),
    max_bpp: Optional[float] = typer.Option(None, "--max-bpp", help="Budget of the refined stream (all parts)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="B1,B2,…: several new layers, each a budget "
                                         "of the stream up to it (bpp)."),
    selection: Optional[str] = typer.Option(None, "--selection", help="The selection the stream was made "
                                            "with (default: the preset's)."),
    latent_checkpoint: Optional[Path] = typer.Option(None, "--latent-checkpoint",
                                                     help="Local CompressAI checkpoint (flux presets)."),
):
    """Write the next layer(s) of IMAGE's stream: a part to send after SENT (gsc decode SENT MORE, or cat)."""
    from .codec import Codec
    from .format.layered import read
    from .image import check_output, load_image, write_atomic
    from .presets import preset_by_id

    check_output(output, image)
    parts = _read_parts(sent)
    preset = preset_by_id(read(parts).header.preset_id).name
    codec = Codec.from_options(preset, "none", selection=selection, latent_checkpoint=latent_checkpoint)
    more = codec.refine(load_image(image), parts, layers=_budgets(layers), max_bpp=max_bpp)
    write_atomic(output, lambda f: f.write(more))
    whole = b"".join(parts) + more
    typer.echo(f"{output}: {len(more)} bytes; with the parts sent {len(whole)} bytes, "
               f"{codec.summary(whole)['bpp']:.5f} bpp ({codec.summary(whole)['decoded']})")


@app.command("train-lite")
def train_lite(
    data: Path = typer.Option(Path("../shared/data/bsds500"), "--data", help="BSDS500 root (train/ val/ test/)."),
    out: Path = typer.Option(Path("runs/lite"), "--out", help="Checkpoints and logs."),
    weights: Path = typer.Option(Path("src/gsc/weights"), "--weights", help="Where the final safetensors go."),
    stages: str = typer.Option("synthesis,base,adapter", "--stages", help="Comma list of synthesis, base, adapter."),
    minutes: str = typer.Option("", "--minutes", help="Wall-clock budget per stage, stage=minutes,… "
                                "(default: the config's, docs/models.md)."),
    steps: str = typer.Option("", "--steps", help="Step budget per stage, stage=steps,…"),
    init: str = typer.Option("", "--init", help="Warm starts, stage=weights.safetensors,… (a new optimizer "
                             "and schedule)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", help="torch threads."),
):
    """Train the lite preset's models (seeded, resumable: rerun the same command to continue)."""
    from .train.lite import STAGES, LiteTrainConfig, train_lite as run

    def parse(spec: str, cast):
        try:
            d = {k.strip(): cast(v) for k, v in (item.split("=") for item in spec.split(",") if item.strip())}
        except ValueError:
            raise GSCError(f"expected stage=value,… got {spec!r}") from None
        bad = set(d) - set(STAGES)
        if bad:
            raise GSCError(f"unknown stage(s) {sorted(bad)}; stages are {', '.join(STAGES)}")
        return d

    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    if not chosen or any(s not in STAGES for s in chosen):
        raise GSCError(f"--stages must list some of {', '.join(STAGES)}, got {stages!r}")
    cfg = LiteTrainConfig(data=str(data), out=str(out), weights=str(weights), seed=seed, threads=threads,
                          device=device)
    cfg.minutes.update(parse(minutes, float))
    cfg.init.update(parse(init, str))
    for stage, path in cfg.init.items():
        if not Path(path).is_file():
            raise GSCError(f"--init {stage}={path}: no such weights file")
    cfg.steps.update(parse(steps, int))
    try:
        run(cfg, chosen)
    except FileNotFoundError as e:
        raise GSCError(str(e)) from None


def _register_modules() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as e:  # an optional part missing must not break the rest of the CLI
            print(f"gsc: commands from {name} unavailable ({e})", file=sys.stderr)
            continue
        module.register(app)


_register_modules()


def _click_exceptions():
    try:  # typer ≥ 0.25 vendors click as typer._click
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


try:  # the command line being run, as gsc bench writes it above its tables (eval owns it: imports run down)
    from .eval.commands import ARGV
except ImportError:
    ARGV: list[str] = []


def main(argv: list[str] | None = None) -> int:
    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    ex = _click_exceptions()
    try:
        app(args=argv, standalone_mode=False)
    except GSCError as e:
        _echo_err(str(e))
        return 1
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        _echo_err("aborted")
        return 130
    except ex.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        _echo_err("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
