"""Ablation: wrong captions. Each image is sent with another image's caption; the drop is measured.

    python benchmarks/ablation_wrong_captions.py [DATASET] [--preset NAME] [--channels 0,1,2] [--limit N]

The captions are rotated by one over the images sorted by name (image i gets image i+1's caption), so
no image keeps its own. Same C, same selection; only the caption differs.
"""

from __future__ import annotations

import sys

from ablation_common import (by_channels, captions_path, command_line, delta, finish, metric_columns, parser,
                             run_setting)


def swapped(captions: dict[str, str], names: list[str]) -> dict[str, str]:
    """Image i gets image (i+1)'s caption: a derangement whenever there are two or more images."""
    return {n: captions[names[(i + 1) % len(names)]] for i, n in enumerate(names)}


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0], channels="0,1,2").parse_args(argv)
    from gsc.errors import GSCError
    from gsc.caption.captioners import load_captions
    from gsc.eval.evaluate import list_dataset
    from gsc.eval.results import markdown_table

    cap_file = captions_path(args)
    if cap_file is None:
        raise GSCError("wrong-caption ablation needs captions: pass --captions FILE.json")
    captions = load_captions(cap_file)
    names = [p.name for p in list_dataset(args.dataset, args.limit)]
    if len(names) < 2:
        raise GSCError("wrong-caption ablation needs at least 2 images to swap captions between")
    missing = [n for n in names if n not in captions]
    if missing:
        raise GSCError(f"captions file {cap_file} has no caption for {missing[0]}")
    right = run_setting(args, "wrong_captions", "right captions", captions=captions, captions_label=cap_file.name)
    wrong = run_setting(args, "wrong_captions", "swapped captions", captions=swapped(captions, names),
                        captions_label=f"{cap_file.name}, rotated by one")
    from gsc.eval.metrics import METRICS

    names, labels = metric_columns([right, wrong])
    rows = []
    for c, a in sorted(by_channels(right).items()):
        b = by_channels(wrong)[c]
        rows.append([c, a["images"], "bpp", a["bpp"], b["bpp"], delta(b["bpp"], a["bpp"]), None])
        for k, label in zip(names, labels, strict=True):
            # per image: does the right caption score better than the swapped one on this metric?
            ra = {r["image"]: r.get(k) for r in right["per_image"] if r["channels"] == c}
            rb = {r["image"]: r.get(k) for r in wrong["per_image"] if r["channels"] == c}
            up = METRICS[k].higher_is_better if k in METRICS else False
            better = sum(1 for n in ra if ra[n] is not None and rb.get(n) is not None
                         and (ra[n] > rb[n] if up else ra[n] < rb[n]))
            rows.append([c, a["images"], label, a.get(k), b.get(k), delta(b.get(k), a.get(k)),
                         f"{better}/{len(ra)}"])
    body = markdown_table(["C", "images", "metric", "right", "swapped", "Δ (swapped − right)",
                           "images better with the right caption"], rows)
    finish(args, "wrong_captions", f"Ablation: wrong captions, {args.preset}", [right, wrong], body, command_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
