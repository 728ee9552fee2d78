"""Ablation: the caption alone (C = 0), against no caption at all.

    python benchmarks/ablation_caption_only.py [DATASET] [--preset NAME] [--captions FILE] [--limit N]

Two settings at C = 0: the caption (from the captions file, or the preset's captioner when there is
none) and the empty caption. The difference is what the caption alone buys (the lite receiver reads the
caption in g_s and in the flow).
"""

from __future__ import annotations

from ablation_common import codec, delta, finish, images, parser, points, run


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0], channels="0").parse_args(argv)
    from gsc.eval.results import markdown_table

    title = f"Ablation: caption only (C = 0), {args.preset}"
    with_caption = codec(args)
    empty = codec(args, captions={p.name: "" for p in images(args)}, caption_note="no caption")
    bench, bundle = run(args, "caption_only", title, [with_caption, empty], channels="0")
    cols = bench.columns(bundle)
    a, b = points(bundle, with_caption).get(0, {}), points(bundle, empty).get(0, {})
    rows = [["caption", a.get("images"), a.get("bpp"), *[a.get(k) for _, k, _ in cols], a.get("caption_bytes")],
            ["no caption", b.get("images"), b.get("bpp"), *[b.get(k) for _, k, _ in cols], b.get("caption_bytes")],
            ["caption − none", None, delta(a.get("bpp"), b.get("bpp")),
             *[delta(a.get(k), b.get(k)) for _, k, _ in cols], None]]
    body = markdown_table(["C = 0", "images", "bpp", *[h for h, _, _ in cols], "caption B"], rows)
    finish(args, "caption_only", title, body + "".join(f"\n- {line}" for line in bench.unavailable.values()))
    return 0


if __name__ == "__main__":
    from gsc.eval.bench import script

    script(main)
