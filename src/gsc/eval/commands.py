"""CLI commands of the evaluation: ``eval``, ``bench`` (and ``bench-classical``), ``compare``, ``eval-task`` and ``plot``.

Heavy imports (torch, transformers, imagecodecs) happen inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

# Kept here as text so that `gsc --help` imports no torch; a test checks it equals metrics.DEFAULT.
DEFAULT_METRICS = "psnr-rgb,ms-ssim-rgb,psnr-chroma,colour-drift,st-lpips-alex,flip,haarpsi,ms-gmsd"
METRICS_HELP = ("comma-separated: psnr-rgb, ms-ssim-rgb, psnr-chroma, colour-drift, st-lpips-alex, st-lpips-vgg, flip, "
                "haarpsi, ms-gmsd, ssimulacra2 (docs/evaluation.md)")
VGG_HELP = "also ST-LPIPS with the VGG net (≈ 5× the time of alex)"


ARGV: list[str] = []  # set by gsc.cli.main: the command line being run, written above gsc bench's tables

# options shared by gsc bench and gsc bench-classical
DATASET = typer.Argument(..., help="folder of images")
TARGETS = typer.Option("0.01", help="one or more targets, comma-separated (whole-file bpp)")
METRICS_OPTION = typer.Option(DEFAULT_METRICS, help=METRICS_HELP)
VGG_OPTION = typer.Option(False, "--st-lpips-vgg", help=VGG_HELP)


def _grid(max_downscale: float, steps_per_octave: int):
    from ..errors import GSCError
    from .classical import SearchGrid

    if max_downscale < 1 or steps_per_octave < 1:
        raise GSCError(f"--max-downscale must be ≥ 1 and --steps-per-octave ≥ 1, got {max_downscale} and "
                       f"{steps_per_octave}")
    return SearchGrid(max_downscale, steps_per_octave)


def eval_cmd(
    dataset: Path = typer.Argument(..., help="folder of images"),
    output: Path = typer.Option(..., "-o", "--output", help="results JSON (CompressAI format); the table "
                                "(.md), plot (.png) and per-image cache (.cache/) go beside it"),
    preset: str = typer.Option("lite", help="codec preset"),
    channels: str = typer.Option("1,2,4", help="operating points: numbers of latent channels C"),
    captions: Optional[Path] = typer.Option(None, help="JSON {file name: caption}; overrides the captioner"),
    captioner: Optional[str] = typer.Option(None, help="captioner name (default: the preset's)"),
    selection: Optional[str] = typer.Option(None, help="channel selection method (default: the preset's)"),
    step: Optional[float] = typer.Option(None, help="latent quantization step (default: the encoder's)"),
    seed: Optional[int] = typer.Option(None, help="decoder seed (default: the preset's)"),
    steps: Optional[int] = typer.Option(None, help="sampling steps (default: the preset's)"),
    limit: Optional[int] = typer.Option(None, help="only the first N images (sorted by name)"),
    resume: bool = typer.Option(False, "--resume", help="reuse cached records whose key (image, settings, "
                                "weights content, C, metric versions) still holds"),
    save_recon: Optional[Path] = typer.Option(None, help="write reconstructions to DIR/c{C}/NAME.png"),
    compare: List[Path] = typer.Option([], help="more results JSON files to draw on the plot"),
    doc: Optional[Path] = typer.Option(None, help="also write the table into a section of this markdown"),
    learned: bool = typer.Option(True, help="try LPIPS/DISTS/FID/KID (left out where they cannot load)"),
    metrics: str = typer.Option(DEFAULT_METRICS, help=METRICS_HELP),
    st_lpips_vgg: bool = typer.Option(False, "--st-lpips-vgg", help=VGG_HELP),
):
    """Encode + decode every image at each C; bpp and full-reference metrics (docs/evaluation.md)."""
    from .bench import captions_by_name
    from .evaluate import EvalSettings, parse_channels, run_eval
    from .metrics import parse_metrics

    settings = EvalSettings(preset=preset, channels=parse_channels(channels), selection=selection,
                            captioner=captioner, captions=captions_by_name(captions),
                            captions_label=captions.name if captions else "", step=step, seed=seed, steps=steps,
                            learned=learned, metrics=parse_metrics(metrics, st_lpips_vgg))
    result = run_eval(dataset, settings, output, resume=resume, limit=limit, save_recon=save_recon,
                      compare=[str(c) for c in compare], doc=doc, command=" ".join(["gsc", *ARGV]), echo=typer.echo)
    if result is not None:
        typer.echo(output.with_suffix(".md").read_text())

def bench_cmd(
    dataset: Path = DATASET,
    output: Path = typer.Option(..., "-o", "--output", help="bundle JSON; one CompressAI JSON per curve, "
                                "the table (.md), plot (.png) and record cache (.cache/) go beside it"),
    target_bpp: str = TARGETS,
    codecs: str = typer.Option("gsc,webp,jxl,avif", help="comma-separated: gsc[:SELECTION], webp, jxl, "
                               "avif, jpeg"),
    select: str = typer.Option("psnr", help="metric(s) that choose each classical setting per image, "
                               "comma-separated: psnr, st-lpips, flip, …; one curve per codec and metric"),
    metrics: str = METRICS_OPTION,
    st_lpips_vgg: bool = VGG_OPTION,
    preset: str = typer.Option("lite", help="gsc preset"),
    channels: Optional[int] = typer.Option(None, help="gsc: fixed C (default: the encoder's choice)"),
    captions: Optional[Path] = typer.Option(None, help="gsc: JSON {file name: caption} (default: "
                                            "DATASET/captions.json when present, else the captioner)"),
    max_downscale: float = typer.Option(32.0, help="classical: smallest size tried, 1/N of the original"),
    steps_per_octave: int = typer.Option(16, help="classical: downscaled sizes per halving of the width"),
    limit: Optional[int] = typer.Option(None, help="only the first N images (sorted by name)"),
    resume: bool = typer.Option(True, "--resume/--fresh", help="reuse cached records whose key (image, "
                                "codec settings, weights content, target, metric versions) still holds"),
    imports: List[Path] = typer.Option([], "--import", help="an earlier results file whose per-image "
                                       "records seed the cache (numbers kept, nothing measured again)"),
    doc: Optional[Path] = typer.Option(None, help="also write the table into a section of this markdown"),
    save_recon: Optional[Path] = typer.Option(None, help="write reconstructions to DIR/<codec>_<target>/"),
):
    """Every image × codec × target: bpp, metrics, table, CompressAI JSON and plot (docs/evaluation.md)."""
    from .bench import run_cli
    from .metrics import parse_metrics

    bench, bundle = run_cli(dataset, output, codecs=codecs, targets=target_bpp, selects=select,
                            metrics=parse_metrics(metrics, st_lpips_vgg), grid=_grid(max_downscale,
                            steps_per_octave), preset=preset, channels=channels, captions=captions,
                            limit=limit, fresh=not resume, doc=doc, imports=imports, save_recon=save_recon,
                            command=" ".join(["gsc", *ARGV]), echo=typer.echo)
    if bundle is not None:  # (None on the other processes of an accelerate launch)
        typer.echo(bench.table(bundle))

def bench_classical_cmd(
    dataset: Path = DATASET,
    output: Path = typer.Option(..., "-o", "--output", help="as gsc bench"),
    target_bpp: str = TARGETS,
    codecs: str = typer.Option("webp,jxl,avif,jpeg", help="comma-separated: webp, jxl, avif, jpeg"),
    select: str = typer.Option("psnr", help="as gsc bench"),
    metrics: str = METRICS_OPTION,
    st_lpips_vgg: bool = VGG_OPTION,
    max_downscale: float = typer.Option(32.0, help="smallest size tried: 1/N of the original"),
    steps_per_octave: int = typer.Option(16, help="downscaled sizes per halving of the width"),
    limit: Optional[int] = typer.Option(None, help="only the first N images (sorted by name)"),
    resume: bool = typer.Option(True, "--resume/--fresh", help="as gsc bench"),
    imports: List[Path] = typer.Option([], "--import", help="as gsc bench"),
    doc: Optional[Path] = typer.Option(None, help="also write the table into a section of this markdown"),
    save_recon: Optional[Path] = typer.Option(None, help="write reconstructions to DIR/<codec>_<target>/"),
):
    """gsc bench with classical codecs only (the best downscale × quality on --select, bicubic upscale)."""
    from ..errors import GSCError
    from .bench import run_cli
    from .metrics import parse_metrics

    if any(c.strip().startswith("gsc") for c in codecs.split(",")):
        raise GSCError("bench-classical measures classical codecs only: use gsc bench for gsc")
    bench, bundle = run_cli(dataset, output, codecs=codecs, targets=target_bpp, selects=select,
                            metrics=parse_metrics(metrics, st_lpips_vgg), grid=_grid(max_downscale,
                            steps_per_octave), limit=limit, fresh=not resume, doc=doc, imports=imports,
                            save_recon=save_recon,
                            command=" ".join(["gsc", *ARGV]), echo=typer.echo)
    if bundle is not None:
        typer.echo(bench.table(bundle))

def compare_cmd(
    image: Path = typer.Argument(..., help="image file"),
    output: Path = typer.Option(..., "-o", "--output", help="the sheet (PNG)"),
    channels: Optional[int] = typer.Option(None, "-c", "--channels", help="gsc: latent channels C"),
    max_bpp: Optional[float] = typer.Option(None, "--max-bpp", help="gsc: bit budget for the whole stream"),
    codecs: str = typer.Option("webp,jxl,avif", help="classical codecs, comma-separated: webp, jxl, avif, jpeg"),
    select: str = typer.Option("psnr", help="metric that picks each classical codec's downscale × quality: "
                               "psnr, st-lpips, flip, …"),
    crop: Optional[str] = typer.Option(None, help="X,Y,W,H: add a row of 1:1 details of this box"),
    tile_width: int = typer.Option(512, help="shrink wider tiles to this width, so that the labels stay legible "
                                   "(the image's width or more: 1:1)"),
    keep: Optional[Path] = typer.Option(None, help="also write each tile's file (.gsc, .webp, …) and the "
                                        "sheet's numbers and tile boxes (IMAGE_STEM.json) to DIR"),
    preset: str = typer.Option("lite", help="gsc preset"),
    caption: Optional[str] = typer.Option(None, help="gsc: caption text to send"),
    captions: Optional[Path] = typer.Option(None, help="gsc: JSON mapping image file name → caption"),
    caption_policy: Optional[str] = typer.Option(None, help="gsc: keep | drop | auto, as gsc encode (default: the "
                                                 "preset's; lite drops a caption)"),
    captioner: Optional[str] = typer.Option(None, help="gsc: captioner name (default: the preset's)"),
    selection: Optional[str] = typer.Option(None, help="gsc: channel selection method (default: the preset's)"),
    step: Optional[float] = typer.Option(None, help="gsc: latent quantization step Δ (finest tried with --max-bpp)"),
    seed: Optional[int] = typer.Option(None, help="gsc: decoder seed"),
    steps: Optional[int] = typer.Option(None, help="gsc: decoder sampling steps"),
):
    """One picture: the original, gsc, and classical codecs at ≤ gsc's bytes, each with bytes, bpp, PSNR, ST-LPIPS."""
    from ..codec import Codec
    from .compare import build_row, check_options, keep_files, parse_crop, render, summary, title_for, write_sheet
    from .results import markdown_table

    names, chosen = check_options(channels, max_bpp, output, tile_width, codecs, select)
    from ..image import load_image
    from .metrics import available

    for reason in available(["st_lpips_alex"])[1].values():   # said before the work, not after
        typer.echo(f"note: the sheet's ST-LPIPS shows n/a: {reason}", err=True)

    x = load_image(image)
    box = parse_crop(crop, x.shape[-1], x.shape[-2])
    codec = Codec.from_options(preset, captioner, caption, captions, selection)
    # only what the user gave goes to the encoder: its own defaults (and its rate control) do the rest
    encode = {k: v for k, v in dict(channels=channels, max_bpp=max_bpp, step=step, seed=seed, steps=steps,
                                    caption_policy=caption_policy).items() if v is not None}
    tiles = build_row(image, codec, encode, names, chosen[0], echo=typer.echo)
    sheet = render([tiles], box, tile_width, title_for(image, tiles, chosen[0]))
    write_sheet(sheet, output)
    if keep is not None:
        keep_files(tiles, image.stem, keep)
        from .results import write_json

        write_json(keep / f"{image.stem}.json", {"image": str(image), "sheet": str(output), "encode": encode,
                                                "select": chosen[0], "crop": box, "tiles": summary(tiles)})
    rows = [[t["tile"], t["bytes"], t["bpp"], t["psnr"], t["st_lpips_alex"]] for t in summary(tiles)[1:]]
    typer.echo(markdown_table(["tile", "bytes", "bpp", "PSNR (dB)", "ST-LPIPS (alex)"], rows))
    typer.echo(f"{output}: {sheet.width}×{sheet.height}")

def eval_task_cmd(
    originals: Path = typer.Argument(..., help="folder of original images"),
    recons: Path = typer.Argument(..., help="folder of reconstructions (same file stems)"),
    output: Path = typer.Option(..., "-o", "--output", help="results JSON"),
    tasks: str = typer.Option("depth,segmentation,detection", help="comma-separated tasks: depth, "
                              "segmentation, detection (DETR), yolov3-tiny (offline)"),
    depth_model: str = typer.Option("depth-anything/Depth-Anything-V2-Small-hf", help="HF id or folder"),
    segmentation_model: str = typer.Option("nvidia/segformer-b0-finetuned-ade-512-512", help="HF id or folder"),
    detection_model: str = typer.Option("facebook/detr-resnet-50", help="HF id or folder"),
    det_threshold: Optional[float] = typer.Option(None, help="score a detection on the original needs to "
                                                  "count (default: 0.5 for detection, 0.2 for yolov3-tiny)"),
    limit: Optional[int] = typer.Option(None, help="only the first N images"),
):
    """Depth (δ1, AbsRel), segmentation (mIoU), detection (mAP) on reconstructions vs originals."""
    from ..errors import GSCError
    from .tasks import TASKS, YOLO_PACKAGE, run_tasks, tasks_table

    models = {"depth": depth_model, "segmentation": segmentation_model, "detection": detection_model,
              "yolov3-tiny": YOLO_PACKAGE}
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    for n in names:
        if n not in TASKS:
            raise GSCError(f"unknown task {n!r}; choose from {', '.join(TASKS)}")
    obj = run_tasks(originals, recons, {n: models[n] for n in names}, output, det_threshold=det_threshold,
                    limit=limit)
    typer.echo(tasks_table(obj))

def plot_cmd(
    files: List[Path] = typer.Argument(..., help="results JSON files (CompressAI format or bundles)"),
    output: Path = typer.Option(..., "-o", "--output", help="PNG file"),
    title: Optional[str] = typer.Option(None, help="plot title"),
):
    """Draw rate–distortion curves (one panel per metric, against bpp) of several results files in one PNG."""
    from .plot import plot_files

    curves = plot_files(files, output, title)
    typer.echo(f"{output}: {len(curves)} curves")


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the ``gsc`` app."""
    app.command("eval")(eval_cmd)
    app.command("bench")(bench_cmd)
    app.command("bench-classical")(bench_classical_cmd)
    app.command("compare")(compare_cmd)
    app.command("eval-task")(eval_task_cmd)
    app.command("plot")(plot_cmd)
