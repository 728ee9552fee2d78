"""Remote analysis at a byte budget: YOLOv3-tiny on gsc and classical reconstructions (a gsc bench configuration).

    python benchmarks/detection.py [DATASET] [--targets 0.005,0.01,0.02] [--codecs gsc,webp,jxl,avif]
        [--classical BUNDLE.json] [--captions FILE.json] [--preset lite] [--channels C] [--stlpips]
        [--with-objects] [--limit N] [--fresh] [-o OUT.json] [--doc MD]

``gsc.eval.bench`` runs every image × codec × target B (bpp of the whole file): ``gsc`` (the preset's
selection; ``gsc:SELECTION``, e.g. ``gsc:det-ssim``) encodes with ``max_bpp=B`` and a receiver that is not told
the selection decodes; ``webp``, ``jxl``, ``avif``, ``jpeg`` take the best-PSNR downscale × quality that
fits B, rebuilt from a ``gsc bench-classical`` run's choices when ``--classical`` names one (or
``benchmarks/results/classical_<dataset>.json`` exists) and searched otherwise. Each record has bpp, PSNR,
MS-SSIM (and ST-LPIPS with ``--stlpips``) and the ``DetectionAgreement`` measure: YOLOv3-tiny's detections on
the reconstruction scored as COCO mAP@.5 against its detections (score ≥ 0.2) on the original, pooled over
the set (``yolo-map50``) and per image (``yolo-map50-image-mean``). Records are cached beside the output
(the bench cache: gsc records keyed by the content of the weight files), so the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def known_classical(bundle: Path | None) -> dict:
    """(image, codec, budget bytes) → record, from a bench-classical bundle or its cache folder (``.cache/``,
    which a run still in progress fills record by record)."""
    if bundle is None or not bundle.exists():
        return {}
    if bundle.is_dir():
        recs = []
        for p in sorted(bundle.glob("*.json")):
            try:
                recs.append(json.loads(p.read_text()))
            except json.JSONDecodeError:
                continue
    else:
        recs = json.loads(bundle.read_text()).get("per_image", [])
    return {(r["image"], r["codec"], r["budget_bytes"]): r for r in recs
            if "codec" in r and "budget_bytes" in r and r.get("select", "psnr") == "psnr"}


def selection_note(bundle: dict) -> str:
    """For several gsc selections: on how many images each sent other channels than the first one."""
    sels = [c for c in bundle["codecs"] if c.startswith("gsc:")]
    by = {(r["codec"], r["target_bpp"], r["image"]): r for r in bundle["per_image"] if r["fit"]}
    lines = []
    for c in sels[1:]:
        for t in bundle["targets"]:
            pairs = [(by[(sels[0], t, i)], r) for (cc, tt, i), r in by.items() if cc == c and tt == t
                     and (sels[0], t, i) in by]
            differ = sum(a.get("indices") != b.get("indices") for a, b in pairs)
            lines.append(f"- {c.split(':')[2]} vs {sels[0].split(':')[2]} at {t:g} bpp: other channels on "
                         f"{differ} of {len(pairs)} images")
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=ROOT.parent / "shared/data/bsds500/test")
    ap.add_argument("--targets", default="0.005,0.01,0.02", help="bpp budgets (whole file), comma-separated")
    ap.add_argument("--codecs", default="gsc,webp,jxl,avif", help="gsc[:SELECTION], webp, jxl, avif, jpeg")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--channels", type=int, default=None, help="gsc: fixed C (default: the encoder's choice)")
    ap.add_argument("--captions", type=Path, default=None,
                    help="gsc: JSON {file name: caption} (default: DATASET/captions.json when present)")
    ap.add_argument("--classical", type=Path, default=None, help="a gsc bench-classical bundle (or its .cache/ "
                    "folder) whose choices are rebuilt (default: benchmarks/results/classical_<dataset>.json)")
    ap.add_argument("--stlpips", action="store_true", help="also ST-LPIPS (alex, shift-tolerant; ≈ 1.4 s a pair)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    ap.add_argument("--with-objects", action="store_true", help="only images where YOLOv3-tiny finds an object "
                    "on the original (before --limit): the others have no agreement score")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("--fresh", action="store_true", help="measure again, ignoring the cache")
    ap.add_argument("-o", "--output", type=Path, default=None,
                    help="results JSON (default: benchmarks/results/detection_<dataset>[_objects][_firstN].json)")
    ap.add_argument("--doc", type=Path, default=None, help="also write the table into a section of this markdown")
    return ap


def select_images(images: list[Path], measure, with_objects: bool, limit: int | None) -> list[Path]:
    from gsc.eval.codecs import load_picture

    if with_objects:
        images = [p for p in images if measure.objects(load_picture(p))]
    return images[:limit]


def shown(text: str) -> str:
    """Paths as the docs show them: relative to the repository where they lie inside it."""
    return re.sub(re.escape(str(ROOT)) + "/", "", text)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    import cv2
    import torch

    from gsc.eval.bench import Bench, captions_by_name, dataset_name
    from gsc.eval.classical import SearchGrid, parse_targets
    from gsc.eval.codecs import load_picture, parse_codec_list
    from gsc.image import list_dataset
    from gsc.eval.measures import DetectionAgreement
    from gsc.eval.results import update_section
    from gsc.image import write_atomic

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    dataset = dataset_name(args.dataset)
    subset = ("_objects" if args.with_objects else "") + (f"_first{args.limit}" if args.limit else "")
    out = args.output or ROOT / "benchmarks/results" / f"detection_{dataset}{subset}.json"
    codecs = parse_codec_list(args.codecs, ["psnr"], SearchGrid(), args.preset, args.channels)
    known = known_classical(args.classical or ROOT / "benchmarks/results" / f"classical_{dataset.removesuffix('_test')}.json")
    for c in codecs:
        if c.kind == "classical":
            c.known = {(i, b): r for (i, n, b), r in known.items() if n == c.codec}
    measure = DetectionAgreement()
    images = select_images(list_dataset(args.dataset), measure, args.with_objects, args.limit)
    cap_file = args.captions or args.dataset / "captions.json"
    wants = any(c.kind == "gsc" for c in codecs) and (args.captions is not None or cap_file.is_file())
    bench = Bench(codecs, parse_targets(args.targets), ["psnr", "ms_ssim", *(["st_lpips_alex"] if args.stlpips else [])],
                  measures=[measure], name=f"YOLOv3-tiny detection agreement, {dataset}")
    bundle = bench.run(images, out, captions=captions_by_name(cap_file) if wants else None, fresh=args.fresh)
    objects = {p.name: measure.objects(load_picture(p)) for p in images}
    how = shown("python benchmarks/detection.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    text = (f"`{how}`\n\n{len(images)} images, {sum(v > 0 for v in objects.values())} with a reference object "
            f"(YOLOv3-tiny score ≥ 0.2 on the original), {sum(objects.values())} objects. Plot: "
            f"`{shown(str(out.with_suffix('.png')))}`.\n\n{bench.table(bundle)}{selection_note(bundle)}")
    write_atomic(out.with_suffix(".md"), lambda f: f.write(text.encode()))
    if args.doc:
        update_section(args.doc, f"detection-{out.stem}", text, title=f"Detection agreement: {out.stem}")
    print(text)
    return 0


if __name__ == "__main__":
    from gsc.eval.bench import script

    script(main)
