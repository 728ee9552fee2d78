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
from typer.core import TyperCommand, TyperGroup

from .errors import GSCError


class FlagsWithoutValues:
    """typer's rich help prints a flag as ``--quiet <bool>``, which reads as if it took a value: no type for
    flags."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.get_params(ctx):
            if getattr(param, "is_flag", False):
                param.metavar = ""
        super().format_help(ctx, formatter)


class HelpGroup(FlagsWithoutValues, TyperGroup):
    pass


class HelpCommand(FlagsWithoutValues, TyperCommand):
    """Also arguments in capitals in the usage line (``IMAGE``, where typer prints ``{image}``)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.name.upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


app = typer.Typer(cls=HelpGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Generative semantic coding: images below 0.01 bpp from a caption and a few latent channels.")

# Modules that add their own commands with ``register(app)``.
COMMAND_MODULES: list[str] = ["gsc.train.adapter_cli", "gsc.eval.commands"]


MAX_PIXELS_HELP = ("Decode budget: the largest image accepted, in pixels (default 16777216 = 2^24); also scales "
                   "the entropy decoder's work limit. Lift it only for a trusted sender.")
MAX_STEPS_HELP = "Decode budget: the most sampling steps accepted (default: the preset's, e.g. lite 64)."
QUIET_HELP = "No progress bar."


def _echo_err(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    # escaped: a message may hold brackets (".[eval]") that rich would take for markup and drop
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)


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


def _jobs(source: Path, output: Optional[Path], suffix: str, inputs) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every file ``inputs(folder)`` lists into an output folder (made
    if missing). Default outputs: the input's name with ``suffix``, beside it."""
    from .image import check_output

    if not source.is_dir():
        target = output or source.with_name(source.stem + suffix)
        check_output(target, source)
        return [(source, target)]
    folder = output or source
    if folder.exists() and not folder.is_dir():
        raise GSCError(f"{source} is a folder, so the output must be a folder too, and {folder} is a file")
    sources = inputs(source)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(p, folder / (p.stem + suffix)) for p in sources]
    for p, target in jobs:
        check_output(target, p)
    return jobs


def _images_in(folder: Path) -> list[Path]:
    from .image import list_dataset

    return list_dataset(folder)


def _streams_in(folder: Path) -> list[Path]:
    streams = sorted(p for p in folder.iterdir() if p.suffix == ".gsc" and p.is_file())
    if not streams:
        raise GSCError(f"no .gsc streams in {folder}")
    return streams


def _run_jobs(jobs: list[tuple[Path, Path]], one, label: str, quiet: bool, folder: bool) -> None:
    """``one(source, target, bar)`` for each job: a spinner for one file (``bar`` can add its own task), a
    bar over the files for a folder, where a file that fails is named in one line and the rest go on."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=quiet) as bar:
        if not folder:
            task = bar.add_task(f"{label} {jobs[0][0].name}", total=None)
            one(*jobs[0], bar)
            bar.remove_task(task)
            return
        task, failed = bar.add_task(f"{label} {len(jobs)} files", total=len(jobs)), []
        for source, target in jobs:
            try:
                one(source, target, bar)
            except GSCError as e:
                failed.append(source.name)
                _echo_err(f"{source.name}: {e}")   # on stderr, above the bar
            bar.advance(task)
    if failed:
        raise GSCError(f"{len(failed)} of {len(jobs)} files failed: {', '.join(failed)}")


@app.command()
def encode(
    image: Path = typer.Argument(..., help="Image file (PNG, JPEG, …; any mode and size ≥ 16×16), or a folder of "
                                 "them."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .gsc stream (default: IMAGE's name "
                                          "with .gsc, beside it); for a folder IMAGE, the output folder."),
    channels: Optional[int] = typer.Option(None, "-c", "--channels", help="C: latent channels to send, 0 = caption "
                                           "only (lite: the thumbnail's first C DCT bands, 0..64). Default: "
                                           "chosen by the sender under --max-bpp (lite: the bands that fit; flux "
                                           "without --max-bpp: 1)."),
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
    max_bpp: Optional[float] = typer.Option(None, "--max-bpp", help="Bit budget for the whole stream (lite's "
                                            "default 0.01). Without --channels the sender picks C and Δ (the best "
                                            "it measures that fits); with --channels it coarsens Δ until the "
                                            "stream fits. lite spends at most what its finest thumbnail takes (a few "
                                            "tenths of a bpp; encode says when it stops there)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="B1,B2,…,B: write layers, the stream up to "
                                         "layer i a whole stream of at most Bi bpp (flux presets: each layer "
                                         "adds the next channels; lite: finer steps of its thumbnail; several "
                                         "layers write version 4)."),
    stream_version: Optional[int] = typer.Option(None, "--stream-version", help="3 | 4: the container "
                                                 "(default: the preset's, lite 3 and flux 4; 4 with --layers). 4 checks each "
                                                 "section, repairs a damaged header byte and carries layers, "
                                                 "for 2–3 bytes more (docs/stream-format.md)."),
    caption_policy: Optional[str] = typer.Option(None, "--caption-policy", help="keep | drop | auto: send the "
                                                 "caption, or not (its bytes go to the image), or drop it where it "
                                                 "would take more than 15 % of --max-bpp (default: the preset's; "
                                                 "lite: drop, README says why)."),
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
    quiet: bool = typer.Option(False, "-q", "--quiet", help=QUIET_HELP),
):
    """Compress IMAGE into a .gsc stream (a folder: each image into the output folder)."""
    jobs = _jobs(image, output, ".gsc", _images_in)
    from .codec import Codec

    codec = Codec.from_options(preset, captioner, caption, captions, selection, latent_checkpoint,
                               {"model": captioner_model, "device": device, "max_new_tokens": caption_tokens})
    options = dict(channels=channels, step=step, seed=seed, steps=steps, max_bpp=max_bpp,
                   caption_policy=caption_policy, layers=_budgets(layers), version=stream_version)
    _run_jobs(jobs, lambda source, target, bar: _encode_one(codec, source, target, options, bar), "encoding",
              quiet, image.is_dir())
    if (caption is not None or captions is not None) and caption_policy is None \
            and codec.preset.caption_policy == "drop" and channels != 0:
        print(f"gsc: note: the caption was not sent: {codec.preset.name}'s default --caption-policy drop gives its "
              f"bytes to the image (the README says what a caption buys); --caption-policy keep sends it",
              file=sys.stderr)


def _budgets(layers: str | None) -> list[float] | None:
    """--layers B1,B2,… as floats (GSCError on anything else)."""
    if layers is None:
        return None
    try:
        return [float(b) for b in layers.split(",")]
    except ValueError:
        raise GSCError(f"--layers takes bpp values separated by commas, e.g. 0.005,0.01; got {layers!r}") from None


def _encode_one(codec, source: Path, target: Path, options: dict, bar) -> None:
    from .image import load_image, write_atomic

    task = bar.add_task(f"{source.name} (rate control)", total=None)
    data = codec.encode(load_image(source), image_name=source.name, **options,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    bar.remove_task(task)
    write_atomic(target, lambda f: f.write(data))
    info = codec.summary(data)
    typer.echo(f"{target}: {info['total_bytes']} bytes, {info['bpp']:.5f} bpp "
               f"(header {info['header_bytes']}, caption {info['caption_bytes']}, latent {info['latent_bytes']}; "
               f"C={info['channels']} {_indices(info['indices'])}, step {info['step']}"
               f"{'; %d layers' % len(info['layers']) if len(info['layers']) > 1 else ''})")
    if info["decode_refused"]:
        print(f"gsc: note: a receiver with the default limits refuses this stream: {info['decode_refused']}",
              file=sys.stderr)
    if options["max_bpp"] and _finest(codec, data):
        print(f"gsc: note: {info['bpp']:.4f} bpp is the most {info['preset']} spends on this image (its finest "
              f"thumbnail); the rest of --max-bpp {options['max_bpp']} stays unused", file=sys.stderr)


def _finest(codec, data: bytes) -> bool:
    """A lite stream at its finest thumbnail (the smallest scale and luma step): more bytes buy nothing."""
    from .format.tables import LUMA_STEPS, SCALES

    d = codec.info(data)
    return d.get("scale") == SCALES[0] and d["step"] is not None and d["step"][0] == LUMA_STEPS[0]


@app.command()
def decode(
    streams: list[Path] = typer.Argument(..., help="Input .gsc stream, or a folder of them; after a stream, any "
                                         "refinement parts of it (gsc refine), in order."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output image, PNG (default: STREAM's name "
                                          "with _gsc.png, beside it); for a folder STREAM, the output folder."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help=QUIET_HELP),
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
    """Rebuild an image from a .gsc stream (the generator named by the stream's preset); a folder: each stream.
    A cut or damaged stream decodes from the sections that pass their checks, and one line says what."""
    from .codec import Codec
    from .image import check_output

    stream, parts = streams[0], streams[1:]
    if parts and stream.is_dir():
        raise GSCError("refinement parts follow a stream file, not a folder")
    jobs = _jobs(stream, output, "_gsc.png", _streams_in)
    for part in parts:
        check_output(jobs[0][1], part)
    options = {"adapter": str(adapter) if adapter else None, "model": model, "device": device, "dtype": dtype,
               "guidance": guidance, "offload": offload, "fp8": fp8 or None, "vae_tiling": vae_tiling or None}
    codec = Codec(generator_kwargs={k: v for k, v in options.items() if v is not None},
                  max_pixels=max_pixels, max_steps=max_steps)
    _run_jobs(jobs, lambda source, target, bar: _decode_one(codec, [source, *parts], target, bar, strict),
              "decoding", quiet, stream.is_dir())


def _decode_one(codec, sources: list[Path], target: Path, bar, strict: bool) -> None:
    from .image import save_image

    data = _read_parts(sources)
    codec.check_budget(data)   # from the header, before any decoding work
    payload = codec.read(data, strict)
    task = bar.add_task(f"{sources[0].name} ({payload.preset}, {payload.steps} steps)", total=payload.steps)
    image, report = codec.decode_report(data, progress=lambda i: bar.update(task, completed=i + 1), strict=strict)
    bar.remove_task(task)
    save_image(image, target)
    typer.echo(f"{target}: {payload.width}×{payload.height}")
    if not report.intact or report.header_fixed is not None or report.layer_fixed:
        print(f"gsc: {sources[0].name}: {report.line()}", file=sys.stderr)


INFO_LABELS = {"decode_refused": "decode"}   # the table's words where a key alone would not say it


@app.command()
def info(
    streams: list[Path] = typer.Argument(..., help="Input .gsc stream, then any refinement parts of it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (decode_refused: null where decode accepts)."),
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
        t.add_row(INFO_LABELS.get(k, k), _info_value(k, v))
    Console().print(t)


def _info_value(key: str, value) -> str:
    if key == "decode_refused":
        return "accepted" if value is None else f"refused: {value}"
    if value is None:
        return "–"
    if key == "indices":
        return _indices(value)
    if key == "layers":   # one line per layer: its bytes in the stream and whether it decoded
        return "\n".join(f"{i}: bytes {layer['bytes']}, {layer['state']}" for i, layer in enumerate(value, 1))
    if key == "tiles":    # one line per tile: its box (x × y, px) and its layers' states
        return "\n".join(f"{i}: {tile['box']}, layers {', '.join(tile['layers']) or 'none'}"
                         for i, tile in enumerate(value, 1))
    return f"{value:.5f}" if isinstance(value, float) else str(value)


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


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (another host only when you "
                             "name it: the page runs the codec for anyone who reaches it)."),
    port: int = typer.Option(8765, "--port", help="Port (0: a free one, printed)."),
):
    """A local web page: your image, gsc, and WebP at ≤ gsc's bytes, side by side (needs the serve extra)."""
    from .serve import serve as run

    run(host, port, echo=typer.echo)   # click flushes: a reader of the pipe sees the address at once


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
for _command in app.registered_commands:
    if _command.cls in (None, TyperCommand):
        _command.cls = HelpCommand


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
