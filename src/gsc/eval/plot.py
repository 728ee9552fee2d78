"""Rate–distortion plots: any number of CompressAI results files → one PNG (PSNR and MS-SSIM vs bpp)."""

from __future__ import annotations

from pathlib import Path

from ..image import write_atomic
from .results import load_curves

PANELS = [("psnr-rgb", "PSNR [dB]"), ("ms-ssim-rgb", "MS-SSIM")]


def plot_rd(curves: list[dict], out: str | Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here, and no window on a server
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(k, label) for k, label in PANELS if any(k in c["results"] for c in curves)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for c in curves:
            xs, ys = c["results"]["bpp"], c["results"].get(key)
            if not ys:
                continue
            pts = sorted((x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None)
            if not pts:
                continue
            # classical baselines dashed, learned methods solid, as CompressAI's plot does
            style = "--" if c.get("kind") == "classical" else "-"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=4, label=c["name"])
        xmax = max((x for c in curves for x in c["results"]["bpp"] if x is not None), default=1.0)
        ax.set_xlim(0, xmax * 1.08)  # from zero: at these rates every byte is a visible share
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=150))
    plt.close(fig)


def plot_files(files: list[str | Path], out: str | Path, title: str | None = None) -> list[dict]:
    curves = [c for f in files for c in load_curves(f)]
    plot_rd(curves, out, title)
    return curves
