"""``gsc eval``: every image of a folder at each operating point C (channels), a configuration of the bench.

The bench driver (``gsc.eval.bench``) does the work, with one codec, ``GscBench`` (preset, selection,
captioner, step, seed, steps), on a channel axis: each C is that codec with ``channels=C`` and no byte
budget. So ``gsc eval`` shares the driver's record cache (keyed by the content of the weights), summary,
table, CompressAI JSON, plot and its accelerate split. What it adds: the learned metrics (LPIPS, DISTS per
image, FID, KID per C, where they load: ``measures.LearnedMetrics``), reconstructions in ``DIR/c{C}/``,
and the results file as one CompressAI curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GSCError
from ..image import list_dataset
from .metrics import DEFAULT as DEFAULT_METRICS


@dataclass
class EvalSettings:
    preset: str = "lite"
    channels: list[int] = field(default_factory=lambda: [1, 2, 4])
    selection: str | None = None            # None: the preset's (lite: ordered, flux: ssim)
    captioner: str | None = None            # None: the preset's default captioner
    captions: dict[str, str] | None = None  # file name → caption; overrides the captioner
    captions_label: str = ""                # where the captions came from, for the description
    step: float | None = None               # None: the encoder's default
    seed: int | None = None
    steps: int | None = None
    learned: bool = True                    # try LPIPS/DISTS/FID/KID
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))  # gsc.eval.metrics names

    def codec(self, stand_in=None):
        """The one gsc codec of the run (``stand_in``: a Codec-like object instead of the preset's)."""
        from .codecs import GscBench

        return GscBench(self.preset, self.selection, captioner=self.captioner, step=self.step, seed=self.seed,
                        steps=self.steps, codec=stand_in)


def parse_channels(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GSCError(f"--channels must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise GSCError(f"--channels needs at least one value ≥ 0, got {text!r}")
    return sorted(set(values))


def check_metrics(settings: EvalSettings, store: Path, echo=print):
    """The metrics that run here, the learned-metrics measure (or None) and a line for each that cannot."""
    from .metrics import available

    ok, unavailable = available(settings.metrics)
    measure = None
    if settings.learned:
        from .measures import LearnedMetrics
        from .metrics import PerceptualMetrics

        perceptual = PerceptualMetrics()
        unavailable.update(perceptual.unavailable)
        measure = LearnedMetrics(perceptual, store) if perceptual.names else None
    if _main_process():
        for line in unavailable.values():
            echo(line)
    return ok, measure, unavailable


def _main_process() -> bool:
    from .bench import process_state

    return process_state().is_main_process


def eval_bench(settings: EvalSettings, out: Path, name: str, *, codec=None, save_recon=None, compare=(),
               echo=print):
    """The ``Bench`` that ``gsc eval`` runs: one gsc codec over the channel axis."""
    from .bench import Bench
    from .results import output_paths

    ok, measure, unavailable = check_metrics(settings, output_paths(out)["cache"] / "images", echo)
    gsc = settings.codec(codec)
    source = f"captions from {settings.captions_label or 'a file'}" if settings.captions is not None else \
        f"captioner {settings.captioner or 'preset default'}"
    description = (f"gsc eval: preset {settings.preset}, selection {gsc.selection}, {source}, "
                   f"{'' if settings.step is None else f'step {settings.step}, '}"
                   f"C = {', '.join(str(c) for c in settings.channels)}; bpp counts the whole .gsc file; "
                   "metrics on 8-bit RGB, means over images")
    return Bench([gsc], settings.channels, ok, measures=[measure] if measure else [], name=name,
                 description=description, recon_dir=Path(save_recon) if save_recon else None,
                 unavailable=unavailable, axis="channels", recon_folder="c{target}", layout="curve",
                 compare=list(compare))


def run_eval(dataset: str | Path, settings: EvalSettings, out: str | Path, *, codec=None, resume: bool = False,
             limit: int | None = None, save_recon: str | Path | None = None, compare: list[str] | None = None,
             doc: str | Path | None = None, progress: bool = True, command: str | None = None,
             echo=print) -> dict | None:
    """Evaluate a folder; returns the results as written (one curve, with ``points`` and ``per_image``) on
    process 0, None on the others. Without ``resume`` every record is measured again and overwritten."""
    images = list_dataset(dataset, limit)
    bench = eval_bench(settings, Path(out), Path(dataset).name, codec=codec, save_recon=save_recon,
                       compare=compare or [], echo=echo)
    bundle = bench.run(images, out, captions=settings.captions, fresh=not resume, progress=progress,
                       doc=doc, command=command)
    return None if bundle is None else bench.as_curve(bundle)
