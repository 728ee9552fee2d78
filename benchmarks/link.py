"""How gsc streams survive a bad link: version 3 against version 4, side by side (docs/stream-format.md,
"On a bad link").

    nice python benchmarks/link.py [--images 24] [--trials 20] [--max-bpp 0.01] [--layers 0.0025,0.005,0.01]
        [--preset lite] [--channels C] [--caption-policy keep|drop|auto] [--no-texture] [--checks 1] [--timeout 120]
        [--out benchmarks/results/link.json] [--doc docs/stream-format.md]

Each image (``--data``, Kodak by default) is encoded once as version 3 (one layer at ``--max-bpp``) and once
as version 4 (``--layers``, or one layer; lite's layers are finer steps of its thumbnail, the flux presets' layers are
channel groups), then sent through each condition of ``CONDITIONS``:

- ``cut``: every prefix of 8, 16, … bytes, shorter than the stream;
- ``ber``: every bit flipped with probability 1e-4 or 1e-3;
- ``loss``: 64-byte packets lost at 1, 5 or 10 %. A receiver with packet sequence numbers knows where each
  packet it got belongs and how long a lost one in the middle was, so it zero-fills those: the bytes after
  the gap stay where the stream's lengths and checks say they are, and the damage stays in the sections
  the gap hits (removing them would shift everything after the gap and damage it all). A lost packet at
  the end has no known length: the stream it gets ends at the last packet received, a cut.

Random conditions run ``--trials`` seeded trials per image (the same seeds for both versions). Each received
stream goes to ``Codec.decode_report`` and ends *full* (every announced section verified; a header byte
repaired counts here, and so does a layer 1 its parity repaired), *partial* (some layers or the caption
dropped), *refused* (``StreamError``, its ``BudgetError`` included), a *crash* (any other exception) or a *hang* (over ``--timeout`` seconds of CPU
time). A decode that used a section unlike the sent one (``gsc.testing.fuzz.leaked``) is counted *wrong*.
PSNR is against the original image, colour drift (ΔE) against the undamaged stream's decode, both over the
decoded cases.

Generation costs seconds a picture, so the receiver (``Receiver``) generates each distinct request (caption,
latent symbols, size, seed, steps: what the verified sections carry) once; the table says how many ran. On a
sample (``--checks`` per image, version and condition) a decode of damaged bytes is checked bit-identical to
the decode of its verified sections alone (the sent stream cut after its last decoded layer, or packed again
without a dropped caption), both generated afresh. ``--no-texture`` skips lite's generator (the receiver
draws g_s's low band alone; the stream's texture code is set to 0 before generation).

Resumable: per-image records go to ``--out`` (whole or not at all) under the settings that made them; run
the same command again after an interruption. Writes ``--out``, its table (``.md``), the plot (``--plot``)
and the section ``<!-- gsc:NAME -->`` of ``--doc`` (NAME: ``--out``'s name without ``.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from gsc.codec import Codec  # noqa: E402
from gsc.errors import GSCError, StreamError  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
PACKET = 64
CUT_STEP = 8
OUTCOMES = ("full", "partial", "refused", "crash", "hang")


# -- the link ------------------------------------------------------------------------------------

def cuts(data: bytes, step: int = CUT_STEP) -> list[bytes]:
    """Every prefix of ``step``, 2·``step``, … bytes shorter than ``data``."""
    return [data[:n] for n in range(step, len(data), step)]


def bit_errors(data: bytes, ber: float, rng: np.random.Generator) -> bytes:
    """``data`` with each bit flipped with probability ``ber``."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    return np.packbits(bits ^ (rng.random(bits.size) < ber)).tobytes()


def packet_loss(data: bytes, rate: float, rng: np.random.Generator, size: int = PACKET) -> bytes:
    """What a receiver with sequence numbers holds when each ``size``-byte packet is lost with probability
    ``rate``: lost packets in the middle zero-filled, lost packets at the end missing (a cut)."""
    packets = [data[i:i + size] for i in range(0, len(data), size)]
    lost = rng.random(len(packets)) < rate
    n = len(packets)
    while n and lost[n - 1]:
        n -= 1
    return b"".join(bytes(len(p)) if gone else p for p, gone in zip(packets[:n], lost[:n]))


# name → (how a trial damages a stream, its parameter); "cut" is deterministic
CONDITIONS = {"cut": (None, CUT_STEP), "ber 1e-4": (bit_errors, 1e-4), "ber 1e-3": (bit_errors, 1e-3),
              "loss 1 %": (packet_loss, 0.01), "loss 5 %": (packet_loss, 0.05), "loss 10 %": (packet_loss, 0.10)}


def received(data: bytes, condition: str, trials: int, seed: tuple) -> list[bytes]:
    """The streams a receiver gets under ``condition``: the cuts, or ``trials`` seeded damaged copies."""
    damage, param = CONDITIONS[condition]
    if damage is None:
        return cuts(data, param)
    return [damage(data, param, np.random.default_rng([*seed, t])) for t in range(trials)]


# -- the receiver --------------------------------------------------------------------------------

class Hang(Exception):
    pass


def _hang(signum, frame):
    raise Hang


@contextlib.contextmanager
def cpu_limit(seconds: float):
    """Raise ``Hang`` once the block has used ``seconds`` of the process's CPU time (all threads): other jobs
    on the machine cannot fake a hang, and a loop that never ends burns CPU all the same."""
    old = signal.signal(signal.SIGPROF, _hang)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def request_digest(request) -> str:
    """A digest of everything generation reads from a request: equal digests, equal pictures."""
    h = hashlib.sha256()

    def feed(v):
        if dataclasses.is_dataclass(v):
            for f in dataclasses.fields(v):
                feed(getattr(v, f.name))
        elif isinstance(v, (list, tuple)):
            h.update(f"[{len(v)}".encode())
            for item in v:
                feed(item)
        elif hasattr(v, "numpy") or isinstance(v, np.ndarray):
            a = np.ascontiguousarray(v.numpy() if hasattr(v, "numpy") else v)
            h.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
        else:
            h.update(repr(v).encode())

    feed(request)
    return h.hexdigest()


class _Memo:
    """A generator that runs once per distinct request while its receiver memoises."""

    def __init__(self, owner: "Receiver", inner):
        self.owner, self.inner = owner, inner

    def generate(self, request, progress=None):
        o = self.owner
        if not o.texture and getattr(request.latent, "texture_code", 0):
            request = dataclasses.replace(request, latent=dataclasses.replace(request.latent, texture_code=0))
        o.last = request_digest(request)
        if o.memo and o.last in o.pictures:
            return o.pictures[o.last].clone()
        o.runs += 1
        picture = self.inner.generate(request, progress)
        if o.memo:
            o.pictures[o.last] = picture.clone()
        return picture


class Receiver(Codec):
    """``Codec``'s receiver, generating each distinct request once: ``runs`` counts the generations, ``last``
    is the digest of the latest request. ``texture=False``: lite's low band alone."""

    def __init__(self, texture: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.texture, self.memo, self.pictures, self.runs, self.last = texture, True, {}, 0, None

    def generator(self, preset):
        return _Memo(self, super().generator(preset))

    @contextlib.contextmanager
    def fresh(self):
        """Generate afresh inside the block (the bit-identical check), and remember nothing."""
        self.memo = False
        try:
            yield
        finally:
            self.memo = True


def receive(receiver: Receiver, data: bytes, timeout: float) -> tuple[str, object, object, str | None]:
    """(outcome, picture, report, error) of one received stream, within ``timeout`` seconds of CPU time."""
    try:
        with cpu_limit(timeout):
            picture, report = receiver.decode_report(data)
    except StreamError:
        return "refused", None, None, None
    except Hang:
        return "hang", None, None, f"over {timeout} s of CPU"
    except Exception as e:  # noqa: BLE001 — anything else is a crash, exactly what this counts
        return "crash", None, None, f"{type(e).__name__}: {e}"
    return ("full" if report.intact else "partial"), picture, report, None


def verified_only(sent: bytes, report) -> bytes:
    """The sent stream reduced to the sections ``report`` (of a damaged copy) says were decoded: cut after
    the last decoded layer, and packed again without its caption where the copy's caption was dropped."""
    from gsc.format import layered

    n = report.decoded
    s = layered.read(sent)
    if s.caption_data and report.caption != "ok":
        return layered.pack(s.header, b"", s.layers[:n], s.report.declared)
    return sent[:report.layers[n - 1][1] if n else report.layers[0][0]]


def identical(receiver: Receiver, sent: bytes, data: bytes, report) -> bool:
    """Whether ``data``'s decode is bit-identical to the decode of its verified sections alone, both
    generated afresh (and to the memoised picture the tally used)."""
    import torch

    with receiver.fresh():
        a, _ = receiver.decode_report(data)
        key = receiver.last
        b, _ = receiver.decode_report(verified_only(sent, report))
    return torch.equal(a, b) and torch.equal(a, receiver.pictures[key])


# -- one stream through every condition ----------------------------------------------------------

def _score(receiver: Receiver, picture, original, undamaged, scores: dict) -> tuple[float, float]:
    """(PSNR against the original, ΔE against the undamaged decode), once per distinct request."""
    from gsc.eval.metrics import colour_drift, psnr, to_8bit

    if receiver.last not in scores:
        p = to_8bit(picture)
        scores[receiver.last] = (psnr(p, original), colour_drift(p, undamaged))
    return scores[receiver.last]


def _tally() -> dict:
    return {"cases": 0, **{k: 0 for k in OUTCOMES}, "repaired": 0, "fixed": 0, "wrong": 0, "psnr_sum": 0.0,
            "drift_sum": 0.0, "checks": 0, "identical": 0, "errors": []}


def run_condition(receiver: Receiver, sent: bytes, truth: tuple, condition: str, args, seed: tuple) -> dict:
    """``sent`` under one condition: the tally, and for the cuts the curve [(bytes received, PSNR or None)]."""
    import random

    from gsc.testing.fuzz import leaked

    t, candidates, curve = _tally(), [], []
    for data in received(sent, condition, args.trials, seed):
        outcome, picture, report, error = receive(receiver, data, args.timeout)
        t["cases"] += 1
        t[outcome] += 1
        if error and len(t["errors"]) < 5:
            t["errors"].append(f"{error} (stream {data.hex()})")
        score = None
        if picture is not None:
            score, drift = _score(receiver, picture, *truth)
            t["psnr_sum"] += score
            t["drift_sum"] += drift
            t["repaired"] += report.header_fixed is not None
            t["fixed"] += report.layer_fixed > 0
            t["wrong"] += leaked(sent, data, receiver.read(data))
            if data != sent:
                candidates.append((data, report))
        if condition == "cut":
            curve.append([len(data), score])
    for data, report in random.Random(repr(seed)).sample(candidates, min(args.checks, len(candidates))):
        t["checks"] += 1
        t["identical"] += identical(receiver, sent, data, report)
    return {"tally": t, "curve": curve} if condition == "cut" else {"tally": t}


def run_stream(receiver: Receiver, sent: bytes, original, args, seed: tuple) -> dict:
    """One sent stream through every condition, after its undamaged decode (the reference for ΔE)."""
    from gsc.eval.metrics import to_8bit

    picture, report = receiver.decode_report(sent)
    truth = (to_8bit(original), to_8bit(picture), {})
    score = _score(receiver, picture, *truth)
    return {"bytes": len(sent), "layers": [[a, b] for a, b, _ in report.layers], "psnr": score[0],
            "conditions": {c: run_condition(receiver, sent, truth, c, args, (*seed, k))
                           for k, c in enumerate(CONDITIONS)}}


def encode(codec: Codec, image, caption: str, args) -> dict[str, bytes]:
    """The image as version 3 (one layer at ``--max-bpp``; with ``--channels`` and ``--layers``, as many
    channels as version 4's layers hold) and as version 4 (``--layers``, or one layer)."""
    common = dict(caption=caption, channels=args.channels, max_bpp=args.max_bpp, caption_policy=args.caption_policy)
    v4 = codec.encode(image, version=4, layers=args.layers, **common)
    if args.layers and args.channels is not None:   # v3 carries what v4's layers carry, in its one layer
        common["channels"] = len(codec.read(v4).indices)
    return {"v3": codec.encode(image, version=3, **common), "v4": v4}


def measure(codec: Codec, receiver: Receiver, image, caption: str, args, index: int) -> dict:
    """One image's record: per version, the sent stream through every condition (the same seeds for both)."""
    start, runs = time.perf_counter(), receiver.runs
    receiver.pictures.clear()    # requests never repeat across images: keep the memory of one
    streams = encode(codec, image, caption, args)
    record = {v: run_stream(receiver, data, image, args, (args.seed, index)) for v, data in streams.items()}
    return {**record, "generations": receiver.runs - runs, "seconds": round(time.perf_counter() - start, 1)}


# -- the summary ---------------------------------------------------------------------------------

def totals(images: dict) -> dict:
    """{(version, condition): the tallies of every image added up}."""
    out = {}
    for rec in images.values():
        for v in ("v3", "v4"):
            for c, r in rec[v]["conditions"].items():
                t = out.setdefault((v, c), _tally())
                for k, value in r["tally"].items():
                    t[k] = t[k] + value
    return out


def rows(images: dict) -> list[list]:
    """The table's rows: the undamaged streams, then each condition for v3 and v4."""
    from gsc.eval.results import mean

    out = [["none", v, len(images), len(images), 0, 0, "100 %", mean(r[v]["psnr"] for r in images.values()),
            0.0, 0, 0, 0, f"{mean(r[v]['bytes'] for r in images.values()):.0f} B"] for v in ("v3", "v4")]
    for (v, c), t in sorted(totals(images).items(), key=lambda kv: (list(CONDITIONS).index(kv[0][1]), kv[0][0])):
        n = t["full"] + t["partial"]
        out.append([c, v, t["cases"], t["full"], t["partial"], t["refused"], f"{100 * n / max(t['cases'], 1):.1f} %",
                    t["psnr_sum"] / n if n else None, t["drift_sum"] / n if n else None, t["crash"], t["hang"],
                    t["wrong"], f"{t['identical']}/{t['checks']} identical; {t['repaired']} header, "
                                f"{t['fixed']} layer 1 repaired"])
    return out


HEADERS = ["condition", "stream", "cases", "full", "partial", "refused", "decoded something", "PSNR (dB)",
           "ΔE vs undamaged", "crashes", "hangs", "wrong", "notes"]


def targets(images: dict) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for docs/stream-format.md's targets, on version 4."""
    t = totals(images)
    every = list(t.values())

    def share(c):
        x = t.get(("v4", c), _tally())
        return (x["full"] + x["partial"]) / max(x["cases"], 1)

    checks, same = sum(x["checks"] for x in every), sum(x["identical"] for x in every)
    crashes, hangs = sum(x["crash"] for x in every), sum(x["hang"] for x in every)
    return [("0 crashes and 0 hangs", crashes == hangs == 0, f"{crashes} crashes, {hangs} hangs"),
            ("every damaged stream's decode bit-identical to its verified sections' decode", same == checks,
             f"{same} of {checks} checked" if checks else "no damaged stream decoded: nothing to check"),
            ("BER 1e-4: ≥ 97 % of images decode something (v4)", share("ber 1e-4") >= 0.97,
             f"{100 * share('ber 1e-4'):.1f} %"),
            ("5 % packet loss: ≥ 90 % decode something (v4)", share("loss 5 %") >= 0.90,
             f"{100 * share('loss 5 %'):.1f} %")]


def cut_curves(images: dict) -> dict[str, tuple[list, list, list]]:
    """Per version, at every multiple of 8 bytes up to the longest stream: (bytes received, share of images
    decoded, mean PSNR of those decoded); an image whose whole stream is that long or shorter arrived whole."""
    out = {}
    for v in ("v3", "v4"):
        ends = [r[v]["bytes"] for r in images.values()]
        xs = list(range(CUT_STEP, -(-max(ends) // CUT_STEP) * CUT_STEP + 1, CUT_STEP))
        at = [[r[v]["psnr"] if n >= r[v]["bytes"] else dict(r[v]["conditions"]["cut"]["curve"])[n]
               for r in images.values()] for n in xs]
        shares = [sum(p is not None for p in ps) / len(ps) for ps in at]
        psnrs = [np.mean([p for p in ps if p is not None]) if any(p is not None for p in ps) else np.nan for ps in at]
        out[v] = (xs, shares, psnrs)
    return out


def plot(images: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for v, (xs, shares, psnrs) in cut_curves(images).items():
        a.step(xs, [100 * s for s in shares], where="post", label=f"version {v[1]}")
        b.plot(xs, psnrs, ".-", label=f"version {v[1]}")
    a.set_ylabel("images decoded (%)")
    b.set_ylabel("PSNR of those decoded (dB)")
    b.set_xlabel("bytes received (each stream cut there, or whole where shorter)")
    a.set_title(title)
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


# -- the run -------------------------------------------------------------------------------------

def arguments(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=KODAK, help="a folder of .png images (captions.json beside them)")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--trials", type=int, default=20, help="seeded trials per image and random condition")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--max-bpp", type=float, default=0.01)
    ap.add_argument("--layers", default=None, help="version 4's layers, bpp ascending (e.g. 0.0025,0.005,0.01)")
    ap.add_argument("--channels", type=int, default=None, help="C (the flux presets need it with --max-bpp)")
    ap.add_argument("--caption-policy", default=None, help="keep, drop or auto (default: the preset's)")
    ap.add_argument("--no-texture", dest="texture", action="store_false")
    ap.add_argument("--checks", type=int, default=1, help="bit-identical checks per image, version and condition")
    ap.add_argument("--timeout", type=float, default=120.0, help="a hang: a case over this many CPU seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "link.json")
    ap.add_argument("--plot", type=Path, default=None, help="default: docs/img/<out's name>.png")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "stream-format.md")
    args = ap.parse_args(argv)
    args.layers = [float(b) for b in args.layers.split(",")] if args.layers else None
    if args.layers:
        args.max_bpp = args.layers[-1]
    args.plot = args.plot or ROOT / "docs" / "img" / f"{args.out.stem}.png"
    return args


def settings(args) -> dict:
    """What the records depend on: a saved run with other settings is measured again."""
    return {"preset": args.preset, "max_bpp": args.max_bpp, "layers": args.layers, "channels": args.channels,
            "caption_policy": args.caption_policy,
            "trials": args.trials, "texture": args.texture, "checks": args.checks, "seed": args.seed,
            "packet": PACKET, "cut_step": CUT_STEP, "conditions": {c: p for c, (_, p) in CONDITIONS.items()}}


def report(results: dict, args, command: str) -> str:
    from gsc.eval.results import markdown_table

    images = results["images"]
    met = "\n".join(f"- {name}: **{'met' if ok else 'not met'}** ({value})" for name, ok, value in targets(images))
    runs = sum(r["generations"] for r in images.values())
    texture = "on" if args.texture else "off (g_s low band alone)"
    return (f"`{command}`: {len(images)} images, {args.preset}, v3 one layer at {args.max_bpp} bpp, "
            f"{layers_label(args)}; texture {texture}; {args.trials} trials per random condition; {runs} "
            f"generations run (one per distinct verified content).\n\n"
            + markdown_table(HEADERS, rows(images)) + f"\n![{args.out.stem}](img/{args.plot.name})\n\n{met}\n")


def main(argv=None) -> int:
    from gsc.caption.captioners import load_captions
    from gsc.eval.results import update_section, write_json
    from gsc.image import load_image, write_atomic

    args = arguments(argv)
    paths = sorted(args.data.glob("*.png"))[:args.images]
    caption_file = args.data / "captions.json"
    captions = load_captions(caption_file) if caption_file.is_file() else {}
    saved = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = saved if saved.get("settings") == settings(args) else {"settings": settings(args), "images": {}}
    codec, receiver = Codec(args.preset), Receiver(args.texture)
    try:
        from rich.progress import track

        for index, path in track(list(enumerate(paths)), description="images"):
            if path.name not in results["images"]:
                results["images"][path.name] = measure(codec, receiver, load_image(path),
                                                       captions.get(path.name, ""), args, index)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                write_json(args.out, results)
    except GSCError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "nice python benchmarks/link.py " + " ".join(argv if argv is not None else sys.argv[1:])
    plot(results["images"], args.plot, f"{args.preset}: cuts, v3 against v4 ({layers_label(args)})")
    text = report(results, args, command.strip())
    write_atomic(args.out.with_suffix(".md"), lambda f: f.write(text.encode()))
    update_section(args.doc, args.out.stem, text, title="On a bad link")
    print(text)
    return 0 if all(ok for _, ok, _ in targets(results["images"])[:2]) else 1


def layers_label(args) -> str:
    return f"v4 layers {', '.join(map(str, args.layers))} bpp" if args.layers else f"v4 one layer at {args.max_bpp} bpp"


if __name__ == "__main__":
    sys.exit(main())
