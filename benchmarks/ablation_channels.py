"""Ablation: the number of transmitted latent channels C (the rate knob), with the caption.

    python benchmarks/ablation_channels.py [DATASET] [--preset NAME] [--channels 0,1,2,3,4,6,8] [--limit N]

One curve, a point per C, drawn with the classical codecs (``--compare``; by default
``benchmarks/results/classical_<dataset>.json``, else ``classical_<dataset>_0.01.json``, when one exists).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ablation_common import ROOT, captions_path, command_line, finish, parser, run_setting


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], channels="0,1,2,3,4,6,8")
    ap.add_argument("--compare", type=Path, nargs="*", default=None,
                    help="results files to draw too (default on Kodak: the classical codecs' bundle)")
    args = ap.parse_args(argv)
    if args.compare is None:
        found = [ROOT / f"benchmarks/results/classical_{args.dataset.name}{s}.json" for s in ("", "_0.01")]
        args.compare = [f for f in found if f.is_file()][:1]
    from gsc.caption.captioners import load_captions
    from gsc.eval.evaluate import eval_table
    from gsc.eval.results import load_curves

    cap_file = captions_path(args)
    captions = load_captions(cap_file) if cap_file else None
    sweep = run_setting(args, "channels", "sweep", captions=captions, captions_label=cap_file.name if cap_file else "")
    others = [c for f in args.compare if f.is_file() for c in load_curves(f)]
    finish(args, "channels", f"Ablation: C sweep, {args.preset}", [sweep, *others], eval_table(sweep),
           command_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
