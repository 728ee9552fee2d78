"""Remote analysis at a byte budget: YOLOv3-tiny on gsc and classical reconstructions, against the originals.

    python benchmarks/detection.py [DATASET] [--targets 0.005,0.01,0.02] [--codecs gsc,webp,jxl,avif]
        [--classical BUNDLE.json] [--captions FILE.json] [--channels C] [--stlpips] [--with-objects] [--limit N]
        [-o OUT.json] [--doc MD]

For every image, codec and target B (bpp of the whole file):

- ``gsc`` (the preset's selection; or ``gsc:SELECTION``, e.g. ``gsc:det-ssim``): ``Codec.encode(image, max_bpp=B)``, the stream
  decoded by a receiver that is not told the selection. C is left to the encoder (lite v2 picks C for the
  budget; ``--channels N`` fixes it). Images whose stream cannot fit B are counted as not fitting;
- ``webp``, ``jxl``, ``avif``, ``jpeg``: ``gsc.eval.classical``'s downscale × quality search (best PSNR
  whose file fits B). Its per-image choices are read from a ``gsc bench-classical`` bundle when one is given
  (or found at ``benchmarks/results/classical_<dataset>.json``), and the file is rebuilt from them (checked
  against the bundle's byte count and PSNR); otherwise the search runs here.

Then bpp (real file bytes × 8 / H·W), PSNR, MS-SSIM, optionally ST-LPIPS (alex, shift-tolerant), and YOLOv3-tiny
detections on the reconstruction. Detection agreement (``gsc.eval.tasks.detection_agreement``): COCO mAP@.5 of
those detections against the original's detections with score ≥ 0.2 as ground truth, pooled over the set
(``yolo-map50``) and per image (mean in ``yolo-map50-image-mean``, over the images with a reference object).

Every record is cached beside the output (``OUT.cache/``, keyed by image hash, codec, target and settings, gsc
keyed also by the hash of the package's weight files), so an interrupted run resumes by running the same
command again, and a new lite recomputes only the gsc rows. Writes OUT.json (a bundle of CompressAI curves with
the per-image records), OUT.md (the table), OUT.png (mAP@.5, PSNR against bpp) and, with ``--doc``, a section
of that markdown. A point is drawn only where every image fits the target.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CLASSICAL = ("webp", "jxl", "avif", "jpeg")


# -- ST-LPIPS ---------------------------------------------------------------------------------------

def st_lpips_metric():
    """``st_lpips(a, b)`` on (3, H, W) in [0, 1], alex, shift-tolerant. The shared metric where this gsc has
    it (``gsc.eval.metrics.st_lpips``); else stlpips-pytorch loaded here with stand-ins for the modules it
    imports and never uses on this path (torchvision, IPython, torchsummary)."""
    try:
        from gsc.eval.metrics import st_lpips  # noqa: F401

        return lambda a, b: st_lpips(a, b, net="alex")
    except ImportError:
        pass
    import types

    import torch

    from gsc.errors import GSCError

    standins = {"torchvision": types.ModuleType("torchvision"), "IPython": types.ModuleType("IPython"),
                "torchsummary": types.ModuleType("torchsummary")}
    standins["torchvision"].models = types.SimpleNamespace()
    standins["IPython"].embed = lambda *a, **k: None
    standins["torchsummary"].summary = lambda *a, **k: None
    saved = {k: sys.modules.get(k) for k in standins}
    try:
        import transformers  # noqa: F401  (it caches a torchvision check: import it before the stand-in)
    except ImportError:
        pass
    try:
        sys.modules.update(standins)
        from stlpips_pytorch import stlpips
    except ImportError:
        raise GSCError("ST-LPIPS needs stlpips-pytorch: pip install --no-deps stlpips-pytorch==0.0.2") from None
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    model = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval()

    @torch.no_grad()
    def st_lpips(a, b):
        q = lambda t: ((t.clamp(0, 1) * 255 + 0.5).floor() / 255).float()[None]  # noqa: E731  (8-bit, as users get)
        return float(model(q(a), q(b), normalize=True).flatten()[0])

    return st_lpips


# -- one record -------------------------------------------------------------------------------------

def packed(det: dict) -> dict:
    """Detections as JSON lists (boxes to 0.01 px, scores to 1e-5): what the cache keeps."""
    return {"boxes": [[round(float(v), 2) for v in b] for b in det["boxes"]],
            "scores": [round(float(s), 5) for s in det["scores"]], "labels": [int(v) for v in det["labels"]]}


def unpacked(d: dict) -> dict:
    import numpy as np

    return {"boxes": np.asarray(d["boxes"], np.float64).reshape(-1, 4), "scores": np.asarray(d["scores"], np.float64),
            "labels": np.asarray(d["labels"], np.int64)}


def scores(recon_u8, original, detector, st_lpips) -> dict:
    import torch

    from gsc.eval.metrics import ms_ssim, psnr

    y = torch.from_numpy(recon_u8.copy()).permute(2, 0, 1).double() / 255
    out = {"psnr": psnr(y, original), "ms_ssim": ms_ssim(y, original), "det": packed(detector.detect(recon_u8))}
    if st_lpips is not None:
        out["stlpips"] = st_lpips(y, original)
    return out


def gsc_record(codec, receiver, path, original, target, channels, caption, detector, st_lpips) -> dict:
    from gsc.errors import GSCError
    from gsc.image import to_uint8

    h, w = original.shape[-2:]
    kwargs = {} if channels is None else {"channels": channels}
    t0 = time.perf_counter()
    try:
        data = codec.encode(original, caption=caption, image_name=path.name, max_bpp=target, **kwargs)
    except GSCError as e:  # nothing the encoder may send fits the budget
        return {"fit": False, "why": str(e)}
    encode_s = time.perf_counter() - t0
    info = receiver.info(data)
    t0 = time.perf_counter()
    recon = to_uint8(receiver.decode(data))  # a receiver that does not know the sender's selection
    decode_s = time.perf_counter() - t0
    return {"fit": True, "bytes": len(data), "bpp": len(data) * 8 / (w * h), "channels": info["channels"],
            "indices": info["indices"], "step": info["step"], "caption_bytes": info["caption_bytes"],
            "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3),
            **scores(recon, original, detector, st_lpips)}


def rebuild(name: str, image, rec: dict):
    """The classical file a bench-classical record describes (size, quality), decoded and upscaled as the
    search did; None when the rebuilt file differs from the record (another library version)."""
    from gsc.eval.classical import get_codec, psnr_u8, resize

    codec = get_codec(name)
    h, w = image.shape[:2]
    data = codec.encode(resize(image, (rec["scaled_width"], rec["scaled_height"]), "lanczos"), rec["quality"])
    recon = resize(codec.decode(data), (w, h), "bicubic")
    if len(data) != rec["bytes"] or abs(psnr_u8(recon, image) - rec["psnr"]) > 1e-6:
        return None
    return recon


def classical_record(name, image_u8, original, target, known: dict | None, detector, st_lpips) -> dict:
    from gsc.eval.classical import get_codec, search

    h, w = image_u8.shape[:2]
    budget = math.floor(target * w * h / 8)
    recon = rebuild(name, image_u8, known) if known is not None and known.get("fit") else None
    if recon is not None:
        rec = {k: known[k] for k in ("bytes", "scaled_width", "scaled_height", "quality")}
        rec["source"] = "bench-classical bundle, rebuilt"
    elif known is not None and not known.get("fit"):
        return {"fit": False, "budget_bytes": budget}
    else:  # not in the bundle (or not rebuilt the same): the search, as gsc bench-classical runs it
        found = search(get_codec(name), image_u8, budget)
        if found is None:
            return {"fit": False, "budget_bytes": budget}
        rec = {"bytes": len(found.data), "scaled_width": found.size[0], "scaled_height": found.size[1],
               "quality": found.quality, "source": "searched here"}
        recon = found.recon
    return {"fit": True, **rec, "bpp": rec["bytes"] * 8 / (w * h), **scores(recon, original, detector, st_lpips)}


# -- the run ----------------------------------------------------------------------------------------

def weights_digest() -> str:
    """Hash of the package's weight files: a new lite makes new gsc records."""
    import gsc

    h = hashlib.sha256()
    for p in sorted((Path(gsc.__file__).parent / "weights").glob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def known_classical(bundle: Path | None) -> dict:
    """(image, codec, target) → record, from a bench-classical bundle or from its cache folder (``.cache/``, which
    a bench-classical run still in progress fills record by record)."""
    import json

    if bundle is None:
        return {}
    if bundle.is_dir():
        recs = []
        for p in sorted(bundle.glob("*.json")):
            try:
                recs.append(json.loads(p.read_text()))
            except json.JSONDecodeError:
                continue
    elif bundle.is_file():
        recs = json.loads(bundle.read_text()).get("per_image", [])
    else:
        return {}
    return {(r["image"], r["codec"], float(r["target_bpp"])): r for r in recs if "codec" in r}


def parse_codecs(text: str, default_selection: str = "ordered") -> list[str]:
    """``gsc`` is ``gsc:<the preset's selection>``; classical names pass through."""
    from gsc.errors import GSCError
    from gsc.latent.selection import SELECTORS

    out = []
    for c in (v.strip() for v in text.split(",")):
        if not c:
            continue
        base, _, sel = c.partition(":")
        if base == "gsc":
            if sel and sel not in SELECTORS:
                raise GSCError(f"unknown selection {sel!r} in {c!r}; choose from {', '.join(sorted(SELECTORS))}")
            out.append(f"gsc:{sel or default_selection}")
        elif base in CLASSICAL and not sel:
            out.append(base)
        else:
            raise GSCError(f"--codecs: unknown codec {c!r}; choose from gsc[:SELECTION], {', '.join(CLASSICAL)}")
    if not out:
        raise GSCError("--codecs needs at least one codec")
    return list(dict.fromkeys(out))


def label(codec: str, preset: str) -> str:
    from gsc.eval.classical import get_codec

    if codec.startswith("gsc:"):
        from gsc.presets import get_preset

        default = codec[4:] == get_preset(preset).selection  # the preset's own selection goes unnamed
        return f"gsc {preset}" + ("" if default else f" ({codec[4:]})")
    return get_codec(codec).label


def summarize(records: list[dict], refs: dict, codecs: list[str], targets: list[float], n_images: int,
              settings: dict) -> dict:
    from gsc.eval.results import mean
    from gsc.eval.tasks import detection_agreement

    curves = []
    for c in codecs:
        points, missing = [], []
        for t in targets:
            rs = [r for r in records if r["codec"] == c and r["target_bpp"] == t]
            fit = [r for r in rs if r["fit"]]
            if len(fit) < n_images:
                missing.append({"target_bpp": t, "images_fit": len(fit), "images": n_images})
                continue
            pooled = detection_agreement([unpacked(r["det"]) for r in fit], [refs[r["image"]] for r in fit])
            points.append({"target_bpp": t, "images": len(fit), "bpp": mean(r["bpp"] for r in fit),
                           "bytes": mean(r["bytes"] for r in fit), "psnr": mean(r["psnr"] for r in fit),
                           "ms_ssim": mean(r["ms_ssim"] for r in fit),
                           "stlpips": mean(r.get("stlpips") for r in fit),
                           "yolo_map50": pooled, "yolo_map50_image_mean": mean(r["map50"] for r in fit),
                           "channels": mean(r.get("channels") for r in fit)})
        results = {"bpp": [p["bpp"] for p in points], "psnr-rgb": [p["psnr"] for p in points],
                   "ms-ssim-rgb": [p["ms_ssim"] for p in points],
                   "yolo-map50": [p["yolo_map50"] for p in points],
                   "yolo-map50-image-mean": [p["yolo_map50_image_mean"] for p in points]}
        if any(p["stlpips"] is not None for p in points):
            results["st-lpips-alex"] = [p["stlpips"] for p in points]
        kind = "gsc" if c.startswith("gsc:") else "classical"
        curves.append({"name": label(c, settings["preset"]), "description": settings["descriptions"][c],
                       "results": results,
                       "kind": kind, "codec": c, "points": points, "missing": missing})
    return curves


def table(curves: list[dict], with_stlpips: bool) -> str:
    from gsc.eval.results import markdown_table

    rows = []
    for c in curves:
        entries = [(p["target_bpp"], p) for p in c["points"]] + [(m["target_bpp"], m) for m in c["missing"]]
        for t, e in sorted(entries, key=lambda x: x[0]):
            if "images_fit" in e:
                rows.append([c["name"], f"{t:g}", f"{e['images_fit']}/{e['images']}", "no point", None, None,
                             *([None] if with_stlpips else []), None, None, None])
            else:
                rows.append([c["name"], f"{t:g}", f"{e['images']}/{e['images']}", e["bpp"], e["psnr"], e["ms_ssim"],
                             *([e["stlpips"]] if with_stlpips else []), e["yolo_map50"],
                             e["yolo_map50_image_mean"], None if e["channels"] is None else round(e["channels"], 2)])
    headers = ["codec", "target bpp", "images fit", "bpp", "PSNR (dB)", "MS-SSIM",
               *(["ST-LPIPS ↓"] if with_stlpips else []), "YOLO mAP@.5 (set)", "mAP@.5 per image", "mean C"]
    return markdown_table(headers, rows)


def selection_note(records: list[dict], codecs: list[str], targets: list[float]) -> str:
    """For several gsc selections: on how many images each sent other channels than the first one."""
    sels = [c for c in codecs if c.startswith("gsc:")]
    if len(sels) < 2:
        return ""
    by = {(r["codec"], r["target_bpp"], r["image"]): r for r in records if r["fit"]}
    lines = []
    for c in sels[1:]:
        for t in targets:
            pairs = [(by[(sels[0], t, i)], r) for (cc, tt, i), r in by.items() if cc == c and tt == t
                     and (sels[0], t, i) in by]
            differ = sum(a["indices"] != b["indices"] for a, b in pairs)
            lines.append(f"- {c[4:]} vs {sels[0][4:]} at {t:g} bpp: other channels on {differ} of {len(pairs)} images")
    return "\n" + "\n".join(lines) + "\n"


def plot(curves: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsc.image import write_atomic

    panels = [("yolo-map50", "YOLOv3-tiny agreement, mAP@.5 (set)"), ("psnr-rgb", "PSNR [dB]")]
    if any("st-lpips-alex" in c["results"] for c in curves):
        panels.append(("st-lpips-alex", "ST-LPIPS (alex) ↓"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (key, name) in zip(axes[0], panels, strict=True):
        for c in curves:
            pts = sorted((x, y) for x, y in zip(c["results"]["bpp"], c["results"].get(key, []), strict=False)
                         if x is not None and y is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "--" if c["kind"] == "classical" else "-",
                        marker="o", markersize=4, label=c["name"])
        ax.set_xlim(0, None)
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=130))
    plt.close(fig)


def shown(path: Path) -> str:
    """A path as the docs show it: relative to the repository where it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=ROOT.parent / "shared/data/bsds500/test")
    ap.add_argument("--targets", default="0.005,0.01,0.02", help="bpp budgets (whole file), comma-separated")
    ap.add_argument("--codecs", default="gsc,webp,jxl,avif", help="gsc[:SELECTION], webp, jxl, avif, jpeg")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--channels", type=int, default=None, help="gsc: fixed C (default: the encoder's choice)")
    ap.add_argument("--captions", type=Path, default=None,
                    help="gsc: JSON {file name: caption} (default: DATASET/captions.json when present)")
    ap.add_argument("--classical", type=Path, default=None, help="a gsc bench-classical bundle (or its .cache/ "
                    "folder) to take the classical choices from (default: benchmarks/results/"
                    "classical_<dataset>.json when present)")
    ap.add_argument("--stlpips", action="store_true", help="also ST-LPIPS (alex, shift-tolerant; ≈ 1.4 s a pair)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    ap.add_argument("--with-objects", action="store_true", help="only images where YOLOv3-tiny finds an object "
                    "on the original (before --limit): the others have no agreement score")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("-o", "--output", type=Path, default=None,
                    help="results JSON (default: benchmarks/results/detection_<dataset>[_firstN].json)")
    ap.add_argument("--doc", type=Path, default=None, help="also write the table into a section of this markdown")
    args = ap.parse_args(argv)

    import cv2
    import numpy as np
    import torch
    from tqdm import tqdm

    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.errors import GSCError
    from gsc.eval.classical import parse_targets
    from gsc.eval.evaluate import list_dataset
    from gsc.presets import get_preset
    from gsc.eval.results import RecordCache, file_digest, output_paths, update_section, write_json
    from gsc.eval.tasks import YOLO_INPUT, YOLO_REF_THRESHOLD, detection_agreement, yolo_detector
    from gsc.image import load_image, to_uint8, write_atomic

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    dataset = args.dataset.name if args.dataset.name not in ("test", "val", "train") else \
        f"{args.dataset.parent.name}_{args.dataset.name}"
    subset = ("_objects" if args.with_objects else "") + (f"_first{args.limit}" if args.limit else "")
    out = args.output or ROOT / "benchmarks/results" / f"detection_{dataset}{subset}.json"
    paths = output_paths(out)
    images = list_dataset(args.dataset)
    targets = parse_targets(args.targets)
    codecs = parse_codecs(args.codecs, get_preset(args.preset).selection)
    bundle = args.classical or ROOT / "benchmarks/results" / f"classical_{dataset.removesuffix('_test')}.json"
    known = known_classical(bundle)
    cap_file = args.captions or (args.dataset / "captions.json")
    captions = load_captions(cap_file) if any(c.split(":")[0] == "gsc" for c in codecs) and cap_file.is_file() else None
    if captions:  # keys may carry the split ("test/100007.jpg", data/captions/): match by file name
        captions = {k.rsplit("/", 1)[-1]: v for k, v in captions.items()}
    detector = yolo_detector()
    st_lpips = st_lpips_metric() if args.stlpips else None
    weights = weights_digest() if any(c.startswith("gsc:") for c in codecs) else None
    codecs_by_sel = {c: Codec(preset=args.preset, selection=c[4:]) for c in codecs if c.startswith("gsc:")}
    receiver = Codec()
    settings = {"detector": f"yolov3-tiny ({detector.source}), input {YOLO_INPUT}, score floor {detector.score_floor}, "
                            f"NMS IoU {detector.nms_iou}", "ref_threshold": YOLO_REF_THRESHOLD,
                "preset": args.preset, "channels": args.channels, "weights": weights,
                "captions": str(cap_file) if captions else None, "stlpips": args.stlpips,
                "descriptions": {}}
    for c in codecs:
        if c.startswith("gsc:"):
            settings["descriptions"][c] = (
                f"gsc preset {args.preset}, selection {c[4:]}, encode(max_bpp=target)"
                f"{'' if args.channels is None else f', C = {args.channels}'}, captions "
                f"{cap_file.name if captions else 'from the preset captioner'}; bpp = stream bytes × 8 / H·W")
        else:
            settings["descriptions"][c] = (f"{label(c, args.preset)}: best-PSNR downscale × quality that fits the "
                                           "target "
                                           "(gsc.eval.classical), bicubic upscale; bpp = file bytes × 8 / H·W")

    if not args.with_objects:
        images = images[: args.limit]
    cache = RecordCache(paths["cache"])

    def reference(path: Path) -> dict:  # the original's detections, cached like the records
        key = {"image": path.name, "image_sha": file_digest(path), "original": settings["detector"]}
        rec = cache.get(key)
        if rec is None:
            rec = packed(detector.detect(to_uint8(load_image(path))))
            cache.put(key, rec)
        return unpacked(rec)

    refs = {p.name: reference(p) for p in tqdm(images, desc="originals", unit="img")}
    if args.with_objects:
        images = [p for p in images if (refs[p.name]["scores"] >= YOLO_REF_THRESHOLD).any()][: args.limit]
    refs = {p.name: refs[p.name] for p in images}
    if not images:
        raise GSCError(f"no image of {args.dataset} is left to measure")

    records = []
    bar = tqdm(total=len(images) * len(codecs) * len(targets), desc="detection", unit="rec")
    for path in images:
        original = load_image(path).double()
        image_u8 = np.ascontiguousarray(to_uint8(original))  # the codecs need C order
        sha = file_digest(path)
        caption = captions.get(path.name) if captions else None
        for c in codecs:
            for t in targets:
                key = {"image": path.name, "image_sha": sha, "codec": c, "target_bpp": t,
                       "detector": settings["detector"], "stlpips": args.stlpips}
                if c.startswith("gsc:"):
                    key.update(preset=args.preset, channels=args.channels, weights=weights, caption=caption)
                rec = cache.get(key)
                if rec is None:
                    if c.startswith("gsc:"):
                        rec = gsc_record(codecs_by_sel[c], receiver, path, original, t, args.channels, caption,
                                         detector, st_lpips)
                    else:
                        rec = classical_record(c, image_u8, original, t, known.get((path.name, c, t)),
                                               detector, st_lpips)
                    rec = {"image": path.name, "codec": c, "target_bpp": t, **rec}
                    cache.put(key, rec)
                rec = {k: v for k, v in rec.items() if k != "key"}
                if rec["fit"]:
                    rec["map50"] = detection_agreement([unpacked(rec["det"])], [refs[path.name]])
                records.append(rec)
                bar.update(1)
    bar.close()

    curves = summarize(records, refs, codecs, targets, len(images), settings)
    per_image = [{k: v for k, v in r.items() if k != "det"} for r in records]
    objects = {n: int((d["scores"] >= YOLO_REF_THRESHOLD).sum()) for n, d in refs.items()}
    obj = {"name": f"detection agreement on {dataset}", "kind": "detection",
           "description": __doc__.split("\n\n")[2].replace("\n", " "), "dataset": str(args.dataset),
           "images": len(images), "images_with_objects": sum(v > 0 for v in objects.values()),
           "reference_objects": objects, "targets": targets, "settings": settings, "curves": curves,
           "per_image": per_image}
    write_json(paths["json"], obj)
    body = table(curves, args.stlpips) + selection_note(records, codecs, targets)
    how = "python benchmarks/detection.py " + " ".join(
        re.sub(r"^" + re.escape(str(ROOT)) + "/", "", a) for a in (argv if argv is not None else sys.argv[1:]))
    text = (f"`{how}`\n\n{len(images)} images, {obj['images_with_objects']} with a reference object "
            f"(YOLOv3-tiny score ≥ {YOLO_REF_THRESHOLD} on the original), {sum(objects.values())} objects. "
            f"Plot: `{shown(paths['png'])}`.\n\n{body}")
    write_atomic(paths["md"], lambda f: f.write(text.encode()))
    plot(curves, paths["png"], f"YOLOv3-tiny detection agreement, {dataset}")
    if args.doc:
        update_section(args.doc, f"detection-{paths['json'].stem}", text,
                       title=f"Detection agreement: {paths['json'].stem}")
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one line for user mistakes, as the CLI does
        from gsc.errors import GSCError

        if isinstance(e, GSCError):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        raise
