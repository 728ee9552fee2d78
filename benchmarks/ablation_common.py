"""Shared plumbing of the ``ablation_*.py`` scripts: options, one ``gsc eval`` run per setting, outputs.

Each setting is a full ``gsc.eval.evaluate.run_eval`` (same metrics, same per-image cache, so an
interrupted ablation resumes with ``--resume``). Its files go to
``benchmarks/results/ablations/<ablation>_<dataset>_<preset>/<setting>.*``; the ablation's own summary is
``benchmarks/results/ablation_<ablation>_<dataset>_<preset>.json`` (a bundle of CompressAI curves), a
plot beside it, and a section of ``docs/results.md``. With ``--limit N`` (a smoke run) the names get a
``_firstN`` suffix and the docs are left alone unless ``--doc`` is given.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def parser(description: str, channels: str) -> argparse.ArgumentParser:
    from gsc.eval.commands import DEFAULT_METRICS

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("dataset", nargs="?", type=Path, default=ROOT.parent / "shared/data/kodak")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--channels", default=channels, help="operating points C, comma-separated")
    ap.add_argument("--captions", type=Path, default=None,
                    help="JSON {file name: caption} (default: DATASET/captions.json when it exists)")
    ap.add_argument("--selection", default=None, help="default: the preset's")
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a smoke run)")
    ap.add_argument("--resume", action="store_true", help="reuse per-image records from the cache")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--doc", type=Path, default=None, help="markdown to update (default: docs/results.md, "
                                                           "not on --limit runs)")
    ap.add_argument("--no-learned", action="store_true", help="skip LPIPS/DISTS/FID/KID")
    ap.add_argument("--metrics", default=DEFAULT_METRICS,
                    help="full-reference metrics (JSON keys, comma-separated; docs/evaluation.md)")
    ap.add_argument("--st-lpips-vgg", action="store_true", help="also ST-LPIPS with the VGG net (≈ 5× alex's time)")
    return ap


def captions_path(args) -> Path | None:
    if args.captions is not None:
        return args.captions
    default = args.dataset / "captions.json"
    return default if default.is_file() else None


def tag(args, ablation: str) -> str:
    t = f"{ablation}_{args.dataset.name}_{args.preset}"
    return t + (f"_first{args.limit}" if args.limit else "")


def doc_path(args) -> Path | None:
    if args.doc is not None:
        return args.doc
    return None if args.limit else ROOT / "docs/results.md"


def run_setting(args, ablation: str, setting: str, *, captions: dict | None, captions_label: str = "",
                channels: list[int] | None = None, selection: str | None = None) -> dict:
    """One evaluation; returns its CompressAI result object (with per-image records)."""
    from gsc.eval.evaluate import EvalSettings, parse_channels, run_eval
    from gsc.eval.metrics import parse_metrics

    settings = EvalSettings(preset=args.preset, channels=channels or parse_channels(args.channels),
                            selection=selection or args.selection, captions=captions,
                            captions_label=captions_label, step=args.step, learned=not args.no_learned,
                            metrics=parse_metrics(args.metrics, args.st_lpips_vgg))
    folder = args.out_dir / "ablations" / tag(args, ablation)
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", setting)
    result = run_eval(args.dataset, settings, folder / f"{slug}.json", resume=args.resume, limit=args.limit)
    result["name"] = f"{args.preset}: {setting}"
    return result


def finish(args, ablation: str, title: str, curves: list[dict], body: str, how: str) -> Path:
    """Write the bundle JSON and plot, update the docs section, print the table."""
    from gsc.eval.plot import plot_rd
    from gsc.eval.results import update_section, write_json

    out = args.out_dir / f"ablation_{tag(args, ablation)}.json"
    slim = [{k: v for k, v in c.items() if k != "per_image"} for c in curves]
    write_json(out, {"name": title, "description": how, "dataset": str(args.dataset), "preset": args.preset,
                     "images": curves[0]["points"][0]["images"] if curves and curves[0]["points"] else 0,
                     "curves": slim})
    plot_rd(slim, out.with_suffix(".png"), title=title)
    text = f"`{how}`\n\n{body}"
    unavailable = {k: v for c in curves for k, v in c.get("unavailable", {}).items() if v not in body}
    if unavailable:  # (eval_table bodies already list them)
        text += "\n" + "\n".join(f"- {line}" for line in unavailable.values()) + "\n"
    doc = doc_path(args)
    if doc is not None:
        update_section(doc, f"ablation-{tag(args, ablation)}", text, title=title)
    print(text)
    return out


def command_line() -> str:
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def delta(a, b):
    return None if a is None or b is None else a - b


def by_channels(result: dict) -> dict[int, dict]:
    return {p["channels"]: p for p in result["points"]}


def metric_columns(results: list[dict]) -> tuple[list[str], list[str]]:
    """The metrics measured in any of the results: (record names, column headers with ↑/↓)."""
    from gsc.eval.evaluate import metric_columns as columns

    return columns([p for r in results for p in r["points"]])
