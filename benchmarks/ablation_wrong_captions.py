"""Ablation: wrong captions. Each image is sent with another image's caption; the drop is measured.

    python benchmarks/ablation_wrong_captions.py [DATASET] [--preset NAME] [--channels 0,1,2] [--limit N]

The captions are rotated by one over the images sorted by name (image i gets image i+1's caption), so
no image keeps its own. Same C, same selection; only the caption differs.
"""

from __future__ import annotations

from ablation_common import captions_path, codec, delta, finish, images, parser, points, run


def swapped(captions: dict[str, str], names: list[str]) -> dict[str, str]:
    """Image i gets image (i+1)'s caption: a derangement whenever there are two or more images."""
    return {n: captions[names[(i + 1) % len(names)]] for i, n in enumerate(names)}


def better(bundle: dict, right, wrong, c: int, key: str) -> str:
    """On how many images the right caption scores better than the swapped one on ``key``."""
    from gsc.eval.metrics import METRICS

    def scores(cd):
        return {r["image"]: r.get(key) for r in bundle["per_image"] if r["codec"] == cd.name
                and r["target_channels"] == c and r["fit"]}

    ra, rb = scores(right), scores(wrong)
    up = METRICS[key].higher_is_better if key in METRICS else False
    n = sum(1 for i in ra if ra[i] is not None and rb.get(i) is not None and (ra[i] > rb[i] if up else ra[i] < rb[i]))
    return f"{n}/{len(ra)}"


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0], channels="0,1,2").parse_args(argv)
    from gsc.errors import GSCError
    from gsc.eval.bench import captions_by_name
    from gsc.eval.results import markdown_table

    cap_file = captions_path(args)
    if cap_file is None:
        raise GSCError("wrong-caption ablation needs captions: pass --captions FILE.json")
    captions, names = captions_by_name(cap_file), [p.name for p in images(args)]
    if len(names) < 2:
        raise GSCError("wrong-caption ablation needs at least 2 images to swap captions between")
    missing = [n for n in names if n not in captions]
    if missing:
        raise GSCError(f"captions file {cap_file} has no caption for {missing[0]}")
    title = f"Ablation: wrong captions, {args.preset}"
    right = codec(args, caption_policy="keep")   # kept, or lite's default would send neither
    wrong = codec(args, captions=swapped(captions, names), caption_note="swapped captions", caption_policy="keep")
    bench, bundle = run(args, "wrong_captions", title, [right, wrong])
    rows = []
    for c, a in sorted(points(bundle, right).items()):
        b = points(bundle, wrong).get(c, {})
        rows.append([c, a["images"], "bpp", a["bpp"], b.get("bpp"), delta(b.get("bpp"), a["bpp"]), None])
        rows += [[c, a["images"], label, a.get(k), b.get(k), delta(b.get(k), a.get(k)),
                  better(bundle, right, wrong, c, k)]
                 for label, k, _ in bench.columns(bundle) if k not in ("bytes", "channels", "scaled_width")]
    body = markdown_table(["C", "images", "metric", "right", "swapped", "Δ (swapped − right)",
                           "images better with the right caption"], rows)
    finish(args, "wrong_captions", title, body + "".join(f"\n- {line}" for line in bench.unavailable.values()))
    return 0


if __name__ == "__main__":
    from gsc.eval.bench import script

    script(main)
