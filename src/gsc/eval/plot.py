"""Rate–distortion plots: any number of CompressAI results files → one PNG, one panel per metric."""

from __future__ import annotations

import math
from pathlib import Path

from ..image import write_atomic
from .results import load_curves

# a classical curve's line style says which metric chose its settings
SELECT_STYLES = {"psnr-rgb": "--", "st-lpips-alex": ":", "flip": "-."}


def panels() -> list[tuple[str, str]]:
    """(JSON key, axis label with ↑/↓: which way is better) of every known metric and score, in their order."""
    from .metrics import METRICS, SCORES

    return [(m.key, m.heading) for m in (*METRICS.values(), *SCORES.values())]


def panels_for(curves: list[dict]) -> list[tuple[str, str]]:
    """(JSON key, axis label) of every panel: the known metrics and scores that any curve has, in ``panels()``
    order, then any other list in a curve's ``results`` under its own key, so that every measured quantity is
    drawn."""
    known = panels()
    drawn = [(k, label) for k, label in known if any(k in c["results"] for c in curves)]
    seen = {"bpp", *(k for k, _ in known)}
    return drawn + [(k, k) for k in dict.fromkeys(k for c in curves for k in c["results"]) if k not in seen]


def plot_rd(curves: list[dict], out: str | Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here, and no window on a server
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = panels_for(curves)
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    # one colour per codec (or gsc curve), so that its selections read as one family
    families = list(dict.fromkeys(c.get("codec", c["name"]) for c in curves))
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    xmax = max((x for c in curves for x in c["results"]["bpp"] if x is not None), default=1.0)
    for ax, (key, label) in zip(axes.flat, panels):
        for c in curves:
            xs, ys = c["results"]["bpp"], c["results"].get(key)
            if not ys:
                continue
            pts = sorted((x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None)
            if not pts:
                continue
            # classical baselines dashed (dotted: chosen by another metric), learned methods solid
            style = SELECT_STYLES.get(c.get("select", "psnr-rgb"), "--") if c.get("kind") == "classical" else "-"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=3.5, label=c["name"],
                    color=colours[c.get("codec", c["name"])])
        ax.set_xlim(0, xmax * 1.08)  # from zero: at these rates every byte is a visible share
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("bits per pixel (whole file)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    # every curve once, also those on some panels only (a classical pick scored on one metric)
    legend = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    handles, labels = list(legend.values()), list(legend)
    if len(panels) == 1:
        axes.flat[0].legend(fontsize=8)
    else:  # one legend for all panels, below them
        fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=8,
                   frameon=False)
    if title:
        fig.suptitle(title)
    legend_rows = math.ceil(len(labels) / 4) if len(panels) > 1 else 0
    fig.tight_layout(rect=(0, 0.035 * legend_rows / rows + (0.01 if legend_rows else 0), 1, 1))
    write_atomic(out, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def plot_files(files: list[str | Path], out: str | Path, title: str | None = None) -> list[dict]:
    curves = [c for f in files for c in load_curves(f)]
    plot_rd(curves, out, title)
    return curves
