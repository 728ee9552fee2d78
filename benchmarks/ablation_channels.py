"""Ablation: the number of transmitted latent channels C (the rate knob), with the caption.

    python benchmarks/ablation_channels.py [DATASET] [--preset NAME] [--channels 0,1,2,3,4,6,8] [--limit N]

One curve, a point per C, drawn with the classical codecs (``--compare``; by default
``benchmarks/results/classical_<dataset>.json``, else ``classical_<dataset>_0.01.json``, when one exists).
"""

from __future__ import annotations

from pathlib import Path

from ablation_common import ROOT, codec, finish, parser, run


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], channels="0,1,2,3,4,6,8")
    ap.add_argument("--compare", type=Path, nargs="*", default=None,
                    help="results files to draw too (default on Kodak: the classical codecs' bundle)")
    args = ap.parse_args(argv)
    if args.compare is None:
        found = [ROOT / f"benchmarks/results/classical_{args.dataset.name}{s}.json" for s in ("", "_0.01")]
        args.compare = [f for f in found if f.is_file()][:1]
    title = f"Ablation: C sweep, {args.preset}"
    bench, bundle = run(args, "channels", title, [codec(args)], compare=args.compare)
    finish(args, "channels", title, bench.table(bundle))
    return 0


if __name__ == "__main__":
    from gsc.eval.bench import script

    script(main)
