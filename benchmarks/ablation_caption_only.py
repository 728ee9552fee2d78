"""Ablation: the caption alone (C = 0), against no caption at all.

    python benchmarks/ablation_caption_only.py [DATASET] [--preset NAME] [--captions FILE] [--limit N]

Two settings at C = 0: the caption (from the captions file, or the preset's captioner when there is
none) and the empty caption. The difference is what the caption alone buys. (The lite generator is
unconditional on text, so for ``--preset lite`` the two should match: a check of the wiring.)
"""

from __future__ import annotations

import sys

from ablation_common import (by_channels, captions_path, command_line, delta, finish, metric_columns, parser,
                             run_setting)


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0], channels="0").parse_args(argv)
    from gsc.caption.captioners import load_captions
    from gsc.eval.evaluate import list_dataset
    from gsc.eval.results import markdown_table

    cap_file = captions_path(args)
    captions = load_captions(cap_file) if cap_file else None
    names = [p.name for p in list_dataset(args.dataset, args.limit)]
    with_caption = run_setting(args, "caption_only", "caption", captions=captions,
                               captions_label=cap_file.name if cap_file else "", channels=[0])
    empty = run_setting(args, "caption_only", "no caption", captions={n: "" for n in names},
                        captions_label="empty captions", channels=[0])
    a, b = by_channels(with_caption)[0], by_channels(empty)[0]
    names, labels = metric_columns([with_caption, empty])
    rows = [["caption", a["images"], a["bpp"], *[a.get(k) for k in names], a["caption_bytes"]],
            ["no caption", b["images"], b["bpp"], *[b.get(k) for k in names], b["caption_bytes"]],
            ["caption − none", None, delta(a["bpp"], b["bpp"]), *[delta(a.get(k), b.get(k)) for k in names], None]]
    body = markdown_table(["C = 0", "images", "bpp", *labels, "caption B"], rows)
    finish(args, "caption_only", f"Ablation: caption only (C = 0), {args.preset}", [with_caption, empty], body,
           command_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
