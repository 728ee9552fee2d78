"""``gsc eval``: encode and decode every image of a folder at each operating point (C channels), measure.

Steps for each image and C:

1. encode with the preset's codec (caption from the captions file when one is given) → stream bytes;
2. bpp = stream bytes · 8 / (H · W) of the true image size: the whole file, header included;
3. decode, round to 8 bits, score the metrics of ``EvalSettings.metrics`` (``gsc.eval.metrics``: PSNR,
   MS-SSIM, chroma PSNR, ST-LPIPS, FLIP, HaarPSI, MS-GMSD) and the learned metrics that load here;
4. store the record (and the stream) in the cache next to the output, so an interrupted run resumes.

Under ``accelerate launch`` the images are split between the processes; process 0 gathers the
records, computes the set-level metrics (FID/KID, when they load) and writes JSON, table and plot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GSCError
from ..image import list_dataset  # noqa: F401 (re-exported: benchmarks import it from here)
from .metrics import DEFAULT as DEFAULT_METRICS
from .metrics import METRICS
from .results import (RecordCache, curve, file_digest, markdown_table, mean, output_paths, update_section,
                      write_json)



@dataclass
class EvalSettings:
    preset: str = "lite"
    channels: list[int] = field(default_factory=lambda: [1, 2, 4])
    selection: str | None = None            # None: the preset's (lite: ordered, flux: ssim)
    captioner: str | None = None            # None: the preset's default captioner
    captions: dict[str, str] | None = None  # file name → caption; overrides the captioner
    captions_label: str = ""                # where the captions came from, for the description
    step: float = 1.0
    seed: int | None = None
    steps: int | None = None
    learned: bool = True                    # try LPIPS/DISTS/FID/KID
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))  # gsc.eval.metrics names

    def __post_init__(self):
        if self.selection is None:
            from ..presets import get_preset

            self.selection = get_preset(self.preset).selection

    def caption_for(self, name: str) -> str | None:
        if self.captions is None:
            return None
        if name not in self.captions:
            raise GSCError(f"captions file {self.captions_label or ''} has no caption for {name}")
        return self.captions[name]

    def caption_source(self, name: str) -> str:
        """What the cache key needs: the caption text itself when given, else the captioner's name."""
        if self.captions is not None:
            return "given:" + self.caption_for(name)
        return "captioner:" + (self.captioner or "preset-default")


def parse_channels(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GSCError(f"--channels must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise GSCError(f"--channels needs at least one value ≥ 0, got {text!r}")
    return sorted(set(values))


def weights_fingerprint() -> str:
    """Changes when the content of gsc's shipped weights changes, so a cache never mixes two trainings."""
    from .codecs import weights_digest

    return weights_digest()


def record_key(settings: EvalSettings, path: Path, channels: int, fingerprint: str) -> dict:
    return {"image": path.name, "image_sha": file_digest(path), "preset": settings.preset, "channels": channels,
            "selection": settings.selection, "caption": settings.caption_source(path.name),
            "step": settings.step, "seed": settings.seed, "steps": settings.steps, "weights": fingerprint}


def make_codec(settings: EvalSettings):
    try:
        from ..codec import Codec
    except ImportError as e:
        raise GSCError(f"gsc.codec is not available ({e})") from None
    return Codec(preset=settings.preset, captioner=settings.captioner, selection=settings.selection)


def evaluate_image(codec, path: Path, settings: EvalSettings, cache: RecordCache, fingerprint: str,
                   resume: bool = False, perceptual=None, recon_dir: Path | None = None) -> list[dict]:
    """One record per operating point for one image (from the cache when resuming)."""
    from ..image import load_image, save_image
    from .metrics import Reference

    original = reference = None
    records = []
    for c in settings.channels:
        key = record_key(settings, path, c, fingerprint)
        rec = cache.get(key) if resume else None
        wanted = [*settings.metrics, *(perceptual.pair if perceptual is not None else {})]
        recon_path = recon_dir / f"c{c}" / f"{path.stem}.png" if recon_dir is not None else None
        if rec is not None and all(k in rec for k in wanted) and (recon_path is None or recon_path.exists()):
            records.append({k: v for k, v in rec.items() if k != "key"})
            continue
        if original is None:
            original = load_image(path)
            reference = Reference(original)
        h, w = original.shape[-2:]
        t0 = time.perf_counter()
        data = codec.encode(original, channels=c, caption=settings.caption_for(path.name), image_name=path.name,
                            step=settings.step, seed=settings.seed, steps=settings.steps)
        t1 = time.perf_counter()
        recon = codec.decode(data)
        t2 = time.perf_counter()
        if tuple(recon.shape[-2:]) != (h, w):
            raise GSCError(f"{path.name}: decoded size {tuple(recon.shape[-2:])} differs from {(h, w)}")
        rec = {"image": path.name, "channels": c, "width": w, "height": h, "bytes": len(data),
               "bpp": len(data) * 8 / (w * h), **reference.score(recon, settings.metrics),
               "encode_s": t1 - t0, "decode_s": t2 - t1}
        info = getattr(codec, "info", None)
        if info is not None:
            i = info(data)
            rec.update({k: i[k] for k in ("header_bytes", "caption_bytes", "latent_bytes") if k in i})
        if perceptual is not None:
            rec.update(perceptual.score_pair(recon, original))
        if recon_path is not None:
            recon_path.parent.mkdir(parents=True, exist_ok=True)
            save_image(recon, recon_path)
        cache.put(key, rec, data)
        records.append(rec)
    return records


def summarize(records: list[dict], settings: EvalSettings, set_metrics: dict[int, dict] | None = None,
              unavailable: dict[str, str] | None = None) -> dict:
    """The CompressAI curve: one point per C, each the mean over the images."""
    points = []
    for c in settings.channels:
        recs = [r for r in records if r["channels"] == c]
        if not recs:
            continue
        p = {"channels": c, "images": len(recs)}
        for k in ("bpp", *METRICS, "lpips", "dists", "bytes", "header_bytes", "caption_bytes", "latent_bytes"):
            p[k] = mean(r.get(k) for r in recs)
        p.update((set_metrics or {}).get(c, {}))
        points.append(p)
    caption = f"captions from {settings.captions_label}" if settings.captions is not None else \
        f"captioner {settings.captioner or 'preset default'}"
    name = f"gsc {settings.preset} ({settings.selection})"
    description = (f"gsc eval: preset {settings.preset}, selection {settings.selection}, {caption}, "
                   f"step {settings.step}, C = {', '.join(str(c) for c in settings.channels)}; "
                   "bpp counts the whole .gsc file; metrics on 8-bit RGB, means over images")
    return curve(name, description, points, kind="gsc", channels=[p["channels"] for p in points],
                 points=points, unavailable=unavailable or {},
                 per_image=sorted(records, key=lambda r: (r["channels"], r["image"])))


def metric_columns(points: list[dict]) -> tuple[list[str], list[str]]:
    """The metrics measured in any of ``points``: (record names, column headers with ↑/↓)."""
    shown = [m for m in METRICS.values() if any(p.get(m.name) is not None for p in points)]
    learned = [k for k in ("lpips", "dists", "fid", "kid") if any(p.get(k) is not None for p in points)]
    return ([m.name for m in shown] + learned,
            [f"{m.label} {m.arrow}" for m in shown] + [k.upper() for k in learned])


def eval_table(result: dict) -> str:
    points = result["points"]
    names, labels = metric_columns(points)
    headers = ["C", "images", "bpp", *labels, "caption B", "latent B", "total B"]
    rows = [[p["channels"], p["images"], p["bpp"], *[p.get(k) for k in names],
             p.get("caption_bytes"), p.get("latent_bytes"), p.get("bytes")] for p in points]
    text = f"**{result['name']}** — {result['description']}\n\n" + markdown_table(headers, rows)
    for line in result.get("unavailable", {}).values():
        text += f"\n- {line}"
    return text + "\n"


class _OneProcess:
    """Stands in for accelerate's PartialState where accelerate is not installed."""

    num_processes, process_index, is_main_process = 1, 0, True

    @contextlib.contextmanager
    def split_between_processes(self, items):
        yield items


def _process_state():
    try:
        from accelerate import PartialState
    except ImportError:
        return _OneProcess()
    import torch

    # without CUDA, a torchrun-style launch (accelerate launch --multi_gpu) means several CPU processes
    return PartialState(cpu=not torch.cuda.is_available())


def set_level(perceptual, settings: EvalSettings, images: list[Path], recon_dir: Path | None) -> dict[int, dict]:
    """FID/KID (when they load) per C, over the saved reconstructions against the originals."""
    if perceptual is None or not perceptual.set:
        return {}
    from ..image import load_image

    originals = [load_image(p) for p in images]
    return {c: perceptual.score_sets([load_image(recon_dir / f"c{c}" / f"{p.stem}.png") for p in images], originals)
            for c in settings.channels}


def run_eval(dataset: str | Path, settings: EvalSettings, out: str | Path, *, codec=None, resume: bool = False,
             limit: int | None = None, save_recon: str | Path | None = None, compare: list[str] | None = None,
             doc: str | Path | None = None, progress: bool = True, echo=print) -> dict | None:
    """Evaluate a folder; returns the results object on process 0 (None on the others)."""
    from tqdm.auto import tqdm

    paths = output_paths(out)
    images = list_dataset(dataset, limit)
    for name in [p.name for p in images]:
        settings.caption_for(name)  # fail before any work if a caption is missing
    state = _process_state()
    codec = codec if codec is not None else make_codec(settings)
    from .metrics import available

    ok, unavailable = available(settings.metrics)
    settings = dataclasses.replace(settings, metrics=ok)
    perceptual = None
    if settings.learned:
        from .metrics import PerceptualMetrics

        perceptual = PerceptualMetrics()
        unavailable.update(perceptual.unavailable)
    if state.is_main_process:
        for line in unavailable.values():
            echo(line)
    recon_dir = Path(save_recon) if save_recon else None
    if recon_dir is None and perceptual is not None and perceptual.set:
        recon_dir = paths["cache"] / "recon"  # FID/KID compare sets: keep the reconstructions
    cache = RecordCache(paths["cache"])
    fingerprint = getattr(codec, "fingerprint", None) or weights_fingerprint()

    local = []
    with state.split_between_processes(images) as mine:
        bar = tqdm(mine, desc=f"gsc eval ({settings.preset})", unit="img",
                   disable=not (progress and state.is_main_process))
        for path in bar:
            local += evaluate_image(codec, path, settings, cache, fingerprint, resume, perceptual, recon_dir)
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        records = gather_object(local)
    else:
        records = local
    if not state.is_main_process:
        return None

    result = summarize(records, settings, set_level(perceptual, settings, images, recon_dir), unavailable)
    result["dataset"] = str(dataset)
    write_json(paths["json"], result)
    table = eval_table(result)
    from ..image import write_atomic

    write_atomic(paths["md"], lambda f: f.write(table.encode()))
    from .plot import plot_files

    plot_files([paths["json"], *(compare or [])], paths["png"], title=f"{Path(dataset).name}")
    if doc:
        update_section(doc, f"eval-{paths['json'].stem}", table, title=f"gsc eval: {paths['json'].stem}")
    return result
