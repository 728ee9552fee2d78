"""``gsc bench``: every image × codec × target, one driver for every benchmark (as CompressAI's utils/bench).

The codecs (``gsc.eval.codecs``: classical codecs with their downscale × quality search, gsc presets and
selections) all answer ``encode(picture, budget) → bytes`` and ``decode(bytes, size) → image``. The driver
owns the rest:

- the record cache beside the output (``OUT.cache/``), keyed by the image's content, the codec's
  ``key()`` (its settings, library versions and the content hash of the weights), the target, the
  budget and the metric versions. A record is reused while its key holds and it has every metric asked
  for: an interrupted run resumes by running the same command again, retrained weights make new records;
- the operating points: whole-file bpp targets (a byte budget each), or, with ``axis="channels"``, numbers of
  channels C for gsc codecs (``gsc eval``, the ablations: each C is the codec with ``channels=C``, no budget);
- ``matched``: a codec whose budget is another codec's bytes on the same image and target (WebP at ≤ gsc's
  bytes); ``scored_on``: a codec scored on some of the metrics only (WebP's pick for one metric);
- ``measures``: more per-record scores with their own per-point summary (detection agreement);
- the summary: a point per codec and target where every image fits, and each missing point listed;
- the markdown table (missing points as "no point" rows), the CompressAI JSON (a bundle, and each curve
  in its own file), the plot (``gsc.eval.plot``: a panel per metric of the JSON);
- under ``accelerate launch``, the split of the images between processes; process 0 gathers the records
  and writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GSCError
from .codecs import NoFit, Picture, budget_bytes, jsonable, load_picture
from .results import RecordCache, curve, markdown_table, mean, output_paths, write_json

# record fields the summary averages besides the metrics (where a codec has them)
POINT_FIELDS = ("bpp", "bytes", "channels", "header_bytes", "caption_bytes", "latent_bytes", "encode_s", "decode_s")


def captions_by_name(path: str | Path | None) -> dict[str, str] | None:
    """A captions file as {file name: caption}: keys may carry a split ("test/100007.jpg")."""
    if path is None:
        return None
    from ..caption.captioners import load_captions

    return {k.rsplit("/", 1)[-1]: v for k, v in load_captions(path).items()}


@dataclass
class Bench:
    codecs: list                          # gsc.eval.codecs objects, in table order
    targets: list[float]                  # bpp of the whole file, or C with axis="channels"
    metrics: list[str]                    # gsc.eval.metrics record names
    matched: dict[str, str] = field(default_factory=dict)   # codec name → codec name whose bytes are its budget
    measures: list = field(default_factory=list)            # objects with key, record(recon, picture), point(recs)
    name: str = "bench"
    description: str = ""
    recon_dir: Path | None = None         # also write each reconstruction to DIR/<codec>_<target>/<stem>.png
    unavailable: dict = field(default_factory=dict)          # metric → why it cannot run here (listed, not faked)
    axis: str = "bpp"                     # what a target is: "bpp" (a byte budget) or "channels" (C, no budget)
    recon_folder: str = "{codec}_{target:g}"                  # DIR/<this>/<stem>.png under recon_dir
    layout: str = "bundle"                # main JSON: the bundle, or (one codec) "curve": its curve and records
    compare: list = field(default_factory=list)              # more results files drawn on the plot
    scored_on: dict[str, list[str]] = field(default_factory=dict)  # codec name → its metrics, where not all

    def __post_init__(self):
        names = [c.name for c in self.codecs]
        for a, b in self.matched.items():
            if a not in names or b not in names or names.index(b) > names.index(a):
                raise GSCError(f"matched codec {a!r} needs {b!r} earlier in the list")
        if self.axis not in ("bpp", "channels"):
            raise GSCError(f"axis must be 'bpp' or 'channels', got {self.axis!r}")
        if self.axis == "channels" and (self.matched or any(c.kind != "gsc" for c in self.codecs)):
            raise GSCError("a sweep over channels takes gsc codecs only, none matched")
        if self.layout == "curve" and len(self.codecs) != 1:
            raise GSCError(f"layout 'curve' writes one codec's curve, got {len(self.codecs)} codecs")
        for name, ms in self.scored_on.items():
            if name not in names or not set(ms) <= set(self.metrics):
                raise GSCError(f"scored_on: {name!r} needs to be a codec of the run, scored on some of {self.metrics}")
        self._at: dict = {}

    @property
    def target_key(self) -> str:
        """The records' key of the operating point: ``target_bpp`` or ``target_channels``."""
        return f"target_{self.axis}"

    def at(self, codec, target):
        """The codec that measures one point: itself for a bpp target, a copy with C = target on a channel axis."""
        if self.axis == "bpp":
            return codec
        key = (codec.name, target)
        if key not in self._at:
            self._at[key] = dataclasses.replace(codec, channels=target)
        return self._at[key]

    def metrics_of(self, name: str) -> list[str]:
        """The metrics codec ``name`` is scored on."""
        return self.scored_on.get(name, self.metrics)

    def record_key(self, picture: Picture, codec, target: float, budget: int) -> dict:
        from .metrics import metric_versions

        caption = picture.caption if codec.kind == "gsc" else None  # a classical file never reads it
        return {"image": picture.name, "image_sha": picture.sha, "caption": caption,
                "codec": self.at(codec, target).key(), self.target_key: target, "budget_bytes": budget,
                "metric_versions": metric_versions(), "measures": [m.key for m in self.measures]}

    def budget(self, picture: Picture, codec, target: float, done: dict) -> int | None:
        """Bytes the codec may write: the target's, a matched codec's file, or None (a channel axis: no budget)."""
        if codec.name in self.matched:
            return done[(self.matched[codec.name], target)]["bytes"]
        return budget_bytes(target, picture.size) if self.axis == "bpp" else None

    def measure(self, picture: Picture, codec, target: float, budget: int | None, reference) -> tuple[dict, bytes]:
        """One record, and the file written (kept in the cache for gsc streams)."""
        w, h = picture.size
        rec = {"image": picture.name, "codec": codec.name, self.target_key: target, "width": w, "height": h,
               "budget_bytes": budget}
        point = self.at(codec, target)
        t0 = time.perf_counter()
        try:
            data = point.encode(picture, budget)
        except NoFit as e:
            return {**rec, "fit": False, "why": str(e)}, None
        t1 = time.perf_counter()
        recon = point.decode(data, picture.size)
        t2 = time.perf_counter()
        if budget is not None and len(data) > budget:
            raise GSCError(f"{codec.label} wrote {len(data)} bytes for a budget of {budget} ({picture.name})")
        from .classical import as_tensor

        rec.update(fit=True, bytes=len(data), bpp=len(data) * 8 / (w * h), encode_s=t1 - t0, decode_s=t2 - t1,
                   **jsonable(point.info(data)), **reference.score(as_tensor(recon), self.metrics_of(codec.name)))
        for m in self.measures:
            rec.update(m.record(recon, picture))
        if self.recon_dir is not None:
            from PIL import Image

            from ..image import write_atomic

            path = self.recon_path(picture, codec, target)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda f: Image.fromarray(recon).save(f, format="PNG"))
        return rec, data

    def recon_path(self, picture: Picture, codec, target: float) -> Path:
        folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.recon_folder.format(codec=codec.name, target=target))
        return Path(self.recon_dir) / folder / f"{Path(picture.name).stem}.png"

    def image_records(self, picture: Picture, cache: RecordCache, fresh: bool = False) -> list[dict]:
        """Every codec × target of one image, from the cache where its key and metrics hold."""
        from .metrics import Reference

        done, reference = {}, None
        for codec in self.codecs:
            for t in self.targets:
                source = self.matched.get(codec.name)
                if source is not None and not done[(source, t)]["fit"]:  # neither does a codec matched to it
                    done[(codec.name, t)] = {"image": picture.name, "codec": codec.name, self.target_key: t,
                                             "fit": False, "why": f"{source} does not fit"}
                    continue
                budget = self.budget(picture, codec, t, done)
                key = self.record_key(picture, codec, t, budget)
                rec = None if fresh else cache.get(key)
                if rec is not None and rec["fit"] and not (all(m in rec for m in self.metrics_of(codec.name)) and (
                        self.recon_dir is None or self.recon_path(picture, codec, t).exists())):
                    rec = None
                if rec is None:
                    reference = reference or Reference(picture.tensor())
                    rec, data = self.measure(picture, codec, t, budget, reference)
                    cache.put(key, rec, data if codec.kind == "gsc" else None)
                done[(codec.name, t)] = {k: v for k, v in rec.items() if k != "key"}
        return list(done.values())

    def import_records(self, picture: Picture, cache: RecordCache, records: list[dict]) -> int:
        """Store an earlier run's records of ``picture`` (a results file's ``per_image``) under this run's keys,
        where none is cached: the numbers of a run made before this cache existed, without measuring again.
        Matched codecs are not imported (their budget is another record's bytes). Returns how many were stored."""
        from .codecs import ClassicalBench

        by_name, stored = {c.name: c for c in self.codecs if c.name not in self.matched}, 0
        for r in records:
            name = ClassicalBench.name_for(r.get("codec", ""), r.get("select", "psnr"))
            codec, t = by_name.get(name), r.get(self.target_key)
            if r.get("image") != picture.name or codec is None or t not in self.targets:
                continue
            key = self.record_key(picture, codec, t, self.budget(picture, codec, t, {}))
            if cache.get(key) is None:
                cache.put(key, {**{k: v for k, v in r.items() if k not in ("select", "key")}, "codec": name,
                                "seeded": True})
                stored += 1
        return stored

    def run(self, images: list[Path], out: str | Path, *, captions: dict[str, str] | None = None,
            fresh: bool = False, progress: bool = True, doc: str | Path | None = None,
            command: str | None = None, earlier: list[dict] | None = None) -> dict | None:
        """Measure (or read from the cache) every record, then write JSON, table and plot beside ``out``.
        Returns the bundle on process 0, None on the others."""
        from tqdm.auto import tqdm

        paths = output_paths(out)
        cache = RecordCache(paths["cache"])
        for c in self.codecs:
            if hasattr(c, "cache"):
                c.cache = cache
        if captions is not None:
            missing = [p.name for p in images if p.name not in captions]
            if missing:
                raise GSCError(f"the captions file has no caption for {missing[0]} ({len(missing)} images)")
        state, records = process_state(), []
        with state.split_between_processes(images) as mine:
            for path in tqdm(mine, desc=self.name, unit="img", disable=not (progress and state.is_main_process)):
                picture = load_picture(path, captions.get(path.name) if captions else None)
                if earlier:
                    self.import_records(picture, cache, earlier)
                records += self.image_records(picture, cache, fresh)
        if state.num_processes > 1:
            from accelerate.utils import gather_object

            records = gather_object(records)
        if not state.is_main_process:
            return None
        bundle = self.summarize(records, len(images))
        self.write(bundle, paths, doc, command)
        return bundle

    # -- summary -------------------------------------------------------------------------------------

    def point(self, recs: list[dict]) -> dict:
        p = {"images": len(recs)}
        # a codec's own metrics only: a record may hold more (cached from a run that scored it on all)
        metrics = self.metrics_of(recs[0]["codec"])
        p.update({k: mean(r.get(k) for r in recs) for k in (*POINT_FIELDS, *metrics) if any(k in r for r in recs)})
        if any("scaled_width" in r for r in recs):
            p["scaled_width"] = mean(r["scaled_width"] / r["width"] for r in recs)
        for m in self.measures:
            p.update(m.point(recs))
        return p

    def summarize(self, records: list[dict], n_images: int) -> dict:
        """A bundle: one CompressAI curve per codec, a point per target where every image fits."""
        curves, missing = [], []
        for codec in self.codecs:
            points = []
            for t in self.targets:
                fit = [r for r in records if r["codec"] == codec.name and r[self.target_key] == t and r["fit"]]
                if len(fit) < n_images:  # shown as missing, never a partial mean
                    missing.append({"codec": codec.name, self.target_key: t, "images_fit": len(fit),
                                    "images": n_images})
                    continue
                points.append({self.target_key: t, **self.point(fit)})
            c = curve(codec.label, codec.describe(), points, kind=codec.kind, codec=codec.name,
                      select=getattr(codec, "select_key", None), points=points)
            for m in self.measures:
                c["results"].update({k: [p.get(v) for p in points] for k, v in m.results.items()})
            curves.append(c)
        return {"name": self.name, "description": self.description, "axis": self.axis, "targets": self.targets,
                "codecs": [c.name for c in self.codecs], "metrics": self.metrics, "unavailable": self.unavailable,
                "curves": curves, "missing": missing,
                "per_image": sorted(records, key=lambda r: (r["codec"], r[self.target_key], r["image"]))}

    def columns(self, bundle: dict) -> list[tuple[str, str, object]]:
        """(header, point key, format) of the table's measured columns, where any point has them."""
        from .metrics import METRICS

        points = [p for c in bundle["curves"] for p in c["points"]]
        cols = [(METRICS[m].heading, m, None) for m in self.metrics]
        for m in self.measures:
            cols += m.columns
        cols += [("mean bytes", "bytes", lambda v: f"{v:.1f}"), ("mean C", "channels", lambda v: round(v, 2)),
                 ("mean width", "scaled_width", lambda v: f"1/{1 / v:.1f}")]
        return [c for c in cols if any(p.get(c[1]) is not None for p in points)]

    def table(self, bundle: dict) -> str:
        cols = self.columns(bundle)
        rows = []
        for c in bundle["curves"]:
            entries = [(p[self.target_key], p) for p in c["points"]]
            entries += [(m[self.target_key], m) for m in bundle["missing"] if m["codec"] == c["codec"]]
            for t, e in sorted(entries, key=lambda x: x[0]):
                if "images_fit" in e:
                    rows.append([c["name"], f"{t:g}", f"{e['images_fit']}/{e['images']}", "no point",
                                 *[None] * len(cols)])
                    continue
                cells = [e.get(k) if fmt is None or e.get(k) is None else fmt(e[k]) for _, k, fmt in cols]
                rows.append([c["name"], f"{t:g}", f"{e['images']}/{e['images']}", e["bpp"], *cells])
        target = "target bpp" if self.axis == "bpp" else "C"
        text = markdown_table(["codec", target, "images fit", "bpp", *[h for h, _, _ in cols]], rows)
        return text + "".join(f"\n- {line}" for line in self.unavailable.values())

    @staticmethod
    def as_curve(bundle: dict) -> dict:
        """A one-codec bundle as one CompressAI curve, with the bundle's records and notes beside it."""
        (c,) = bundle["curves"]
        return {**c, **{k: v for k, v in bundle.items() if k not in ("curves", "name", "description")}}

    def write(self, bundle: dict, paths: dict, doc=None, command: str | None = None) -> None:
        from ..image import write_atomic
        from .plot import plot_rd
        from .results import load_curves, update_section

        if self.layout == "curve":
            write_json(paths["json"], self.as_curve(bundle))
        else:
            write_json(paths["json"], bundle)
            for c in bundle["curves"]:
                slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", c["codec"].replace(":", "."))
                write_json(paths["json"].with_name(f"{paths['json'].stem}.{slug}.json"), c)
        text = (f"`{command}`\n\n" if command else "") + self.table(bundle)
        write_atomic(paths["md"], lambda f: f.write(text.encode()))
        others = [c for f in self.compare for c in load_curves(f)]
        plot_rd([*bundle["curves"], *others], paths["png"], title=self.name)
        if doc:
            update_section(doc, f"bench-{paths['json'].stem}", text, title=self.name)


class _OneProcess:
    """Stands in for accelerate's PartialState where accelerate is not installed."""

    num_processes, process_index, is_main_process = 1, 0, True

    @contextlib.contextmanager
    def split_between_processes(self, items):
        yield items


def process_state():
    """accelerate's PartialState (one process unless started by ``accelerate launch``)."""
    try:
        from accelerate import PartialState
    except ImportError:
        return _OneProcess()
    import torch

    # without CUDA, a torchrun-style launch (accelerate launch --multi_gpu) means several CPU processes
    return PartialState(cpu=not torch.cuda.is_available())


def load_earlier(files: list[str | Path]) -> list[dict]:
    """The per-image records of earlier results files (bundles or curves with ``per_image``)."""
    import json

    out = []
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise GSCError(f"no such results file to import: {f}")
        try:
            out += json.loads(f.read_text()).get("per_image", [])
        except (json.JSONDecodeError, AttributeError):
            raise GSCError(f"{f} is not a results file with per-image records") from None
    return out


def dataset_name(folder: Path) -> str:
    """``bsds500/test`` → ``bsds500_test``; other folders by their own name."""
    folder = Path(folder)
    return f"{folder.parent.name}_{folder.name}" if folder.name in ("test", "val", "train") else folder.name


def run_cli(dataset: Path, output: Path, *, codecs: str, targets: str, selects: str, metrics: list[str],
            grid, preset: str = "lite", channels: int | None = None, captions: Path | None = None,
            limit: int | None = None, fresh: bool = False, doc: Path | None = None, save_recon: Path | None = None,
            imports: list[Path] = (), command: str | None = None, echo=print) -> tuple[Bench, dict]:
    """``gsc bench`` (and ``gsc bench-classical``): the options → a Bench, run; one-line errors first."""
    from .classical import parse_selects, parse_targets
    from .codecs import parse_codec_list
    from ..image import list_dataset
    from .metrics import available, get_metric

    chosen = parse_selects(selects)
    for s in chosen:
        get_metric(s).check()  # a selection metric must run: one line (MetricUnavailable) before any work
    codec_list = parse_codec_list(codecs, chosen, grid, preset, channels)
    ok, unavailable = available(list(dict.fromkeys([*metrics, *chosen])))
    for line in unavailable.values():
        echo(line)
    images = list_dataset(dataset, limit)
    cap = captions if captions is not None else (Path(dataset) / "captions.json")
    wants = any(c.kind == "gsc" for c in codec_list)
    caption_table = captions_by_name(cap) if wants and (captions is not None or cap.is_file()) else None
    bench = Bench(codec_list, parse_targets(targets), ok, name=f"{dataset_name(dataset)}",
                  description=f"gsc bench on {dataset_name(dataset)}, {len(images)} images", recon_dir=save_recon,
                  unavailable=unavailable)
    bundle = bench.run(images, output, captions=caption_table, fresh=fresh, doc=doc, command=command,
                       earlier=load_earlier(imports))
    return bench, bundle


def script(main) -> None:
    """Run a benchmark script's ``main()`` as the CLI runs commands: a user mistake is one line, exit 1."""
    import sys

    try:
        sys.exit(main())
    except GSCError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
