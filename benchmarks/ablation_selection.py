"""Ablation: how the C channels are chosen.

    python benchmarks/ablation_selection.py [DATASET] [--preset NAME] [--channels 1,2,4] [--methods ...] [--limit N]

Every method of ``gsc.latent.selection.SELECTORS``: the three SSIM readings (``ssim``, ``ssim-abs``,
``ssim-full``) and the baselines ``energy`` and ``random``, each at the same C and with the same captions.
"""

from __future__ import annotations

import sys

from ablation_common import by_channels, captions_path, command_line, finish, metric_columns, parser, run_setting

METHODS = "ssim,ssim-abs,ssim-full,energy,random"


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], channels="1,2,4")
    ap.add_argument("--methods", default=METHODS)
    args = ap.parse_args(argv)
    from gsc.errors import GSCError
    from gsc.caption.captioners import load_captions
    from gsc.eval.results import markdown_table
    from gsc.latent.selection import SELECTORS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in SELECTORS:
            raise GSCError(f"unknown selection {m!r}; choose from {', '.join(sorted(SELECTORS))}")
    cap_file = captions_path(args)
    captions = load_captions(cap_file) if cap_file else None
    results = [run_setting(args, "selection", m, captions=captions, captions_label=cap_file.name if cap_file else "",
                           selection=m) for m in methods]
    names, labels = metric_columns(results)
    rows = []
    for m, r in zip(methods, results, strict=True):
        for c, p in sorted(by_channels(r).items()):
            rows.append([m, c, p["images"], p["bpp"], *[p.get(k) for k in names]])
    body = markdown_table(["selection", "C", "images", "bpp", *labels], rows)
    finish(args, "selection", f"Ablation: channel selection, {args.preset}", results, body, command_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
