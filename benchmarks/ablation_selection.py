"""Ablation: how the C channels are chosen.

    python benchmarks/ablation_selection.py [DATASET] [--preset NAME] [--channels 1,2,4] [--methods ...] [--limit N]

Every method of ``gsc.latent.selection.SELECTORS``: the three SSIM readings (``ssim``, ``ssim-abs``,
``ssim-full``) and the baselines ``energy`` and ``random``, each at the same C and with the same captions:
one codec per method in one bench run, the driver's table.
"""

from __future__ import annotations

from ablation_common import codec, finish, parser, run

METHODS = "ssim,ssim-abs,ssim-full,energy,random"


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], channels="1,2,4")
    ap.add_argument("--methods", default=METHODS)
    args = ap.parse_args(argv)
    from gsc.errors import GSCError
    from gsc.latent.selection import SELECTORS

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in SELECTORS:
            raise GSCError(f"unknown selection {m!r}; choose from {', '.join(sorted(SELECTORS))}")
    title = f"Ablation: channel selection, {args.preset}"
    bench, bundle = run(args, "selection", title, [codec(args, m) for m in methods])
    finish(args, "selection", title, bench.table(bundle))
    return 0


if __name__ == "__main__":
    from gsc.eval.bench import script

    script(main)
