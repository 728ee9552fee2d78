"""Named presets: which latent encoder and generator (and their weights) a stream was made for.

A preset's ``id`` is written in every stream and never moves: a new model version gets a new id, so a
stream stays decodable years later. ``steps`` and ``seed`` are the decoder defaults that a stream uses
when its header says "preset defaults".

Each preset also carries its receiver's cost model (``decode_seconds``) and the receiver's default limit
on sampling steps (``max_steps``), so that ``gsc info`` and the decode budget (``gsc.budget``) can judge
a stream from its header alone, without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .format.sections import SECTIONS
from .registry import Registry


@dataclass(frozen=True)
class Preset:
    id: int
    name: str
    latent: str                     # name in gsc.latent.encoders.LATENT_ENCODERS
    generator: str                  # name in gsc.generate.GENERATORS
    latent_channels: int            # N: channels the latent encoder produces
    steps: int                      # default sampling steps
    seed: int = 0                   # default decoder seed
    captioner: str = "none"         # default captioner when no caption source is given
    selection: str = "ssim"         # default channel selection (gsc.latent.selection)
    caption_policy: str = "keep"    # default caption policy (gsc.codec.CAPTION_POLICIES): keep, drop or auto
    stream_version: int = 4         # the container written by default (gsc.format: 3 or 4)
    coding: str = "grid"            # latent section kind, a name in gsc.format.sections.SECTIONS
    latent_kwargs: dict = field(default_factory=dict)
    generator_kwargs: dict = field(default_factory=dict)
    description: str = ""
    # Receiver cost on ``cost_device`` (a fresh ``gsc decode``): seconds once (start-up: importing torch,
    # loading the networks), per megapixel per sampling step, and per megapixel once (decoder, pre- and
    # post-processing); ``seconds_per_mpx_plain``, where set, per megapixel of a stream that asks for no
    # generation (lite: the low band alone). Used for estimates, never to decide bits.
    seconds_start: float = 0.0
    seconds_per_mpx_step: float = 0.0
    seconds_per_mpx: float = 0.0
    seconds_per_mpx_plain: float | None = None
    cost_device: str = ""
    max_steps: int = 50             # receiver's default limit on a stream's steps (--max-steps lifts it)

    def decode_seconds(self, width: int, height: int, steps: int, generates: bool = True) -> float:
        """Estimated ``gsc decode`` time for one image on ``cost_device`` (linear in pixels and steps);
        ``generates=False``: a stream the receiver renders without its generator."""
        mpx = width * height / 1e6
        if not generates and self.seconds_per_mpx_plain is not None:
            return self.seconds_start + mpx * self.seconds_per_mpx_plain
        return self.seconds_start + mpx * (steps * self.seconds_per_mpx_step + self.seconds_per_mpx)


PRESETS: Registry[Preset] = Registry("preset")
PRESETS_BY_ID: dict[int, Preset] = {}  # the stream's key: an index over PRESETS
# Ids of presets this gsc no longer decodes, with what made their streams: refused in one line.
RETIRED = {0: "lite v2 (a 1/16 learned grid, gsc before lite v3)"}


def register_preset(p: Preset) -> Preset:
    if p.id in PRESETS_BY_ID or p.id in RETIRED:
        raise ValueError(f"preset {p.name!r} / id {p.id} registered twice")
    if not 0 <= p.id < 8:
        raise ValueError("preset ids are 0..7 (3 bits in the stream)")
    if p.coding not in SECTIONS:
        raise ValueError(f"preset {p.name!r}: unknown latent section kind {p.coding!r}")
    PRESETS.register(p.name, p)
    PRESETS_BY_ID[p.id] = p
    return p


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)


def preset_by_id(pid: int) -> Preset:
    from .errors import StreamError

    if pid in RETIRED:
        raise StreamError(f"this stream was made by {RETIRED[pid]}, which this gsc no longer decodes; "
                          f"encode the image again")
    if pid not in PRESETS_BY_ID:
        raise StreamError(f"stream names preset id {pid}, which this gsc does not know")
    return PRESETS_BY_ID[pid]


DEFAULT_PRESET = "lite"

# Lite's cost on the 2-core CPU, a fresh `gsc decode` at 8 steps with texture on a quiet machine: kodim23
# (0.39 Mpx) 3.5–3.8 s, 1920×1080 (2.07 Mpx) 12.5–13.3 s; a line through both, the per-step share from 1
# against 8 steps; without texture (g_s alone) ≈ 1 s per Mpx. docs/stream-format.md, "Decode budget".
LITE_SECONDS_START = 1.5
LITE_SECONDS_PER_MPX_STEP = 0.3
LITE_SECONDS_PER_MPX = 3.4
LITE_SECONDS_PER_MPX_PLAIN = 1.0

register_preset(Preset(
    id=3, name="lite", latent="lite", generator="lite", latent_channels=64, steps=8, selection="ordered",
    coding="bands", caption_policy="drop",   # the caption's bytes buy more as bands (docs/lite-kodak.md)
    # One layer by default (the best picture at its bytes): in v4 it would buy only the header's repair and a
    # caption dropped alone for 2–3 bytes, which at 0.002 bpp cost a thumbnail step and bring back plateaus;
    # --layers writes v4 (docs/stream-format.md, "Which version is written").
    stream_version=3,
    description="gsc's own small models (BSDS500-trained): a DCT-coded YCbCr thumbnail, a learned upsampler, "
                "texture from a rectified flow in TAEF2's latent space; offline on a CPU",
    seconds_start=LITE_SECONDS_START, seconds_per_mpx_step=LITE_SECONDS_PER_MPX_STEP,
    seconds_per_mpx=LITE_SECONDS_PER_MPX, seconds_per_mpx_plain=LITE_SECONDS_PER_MPX_PLAIN,
    cost_device="a 2-core CPU", max_steps=64,
))
# lite-tiny's cost: a 768×512 decode at 8 steps took 1.5 s of CPU (the 2-core machine, loaded); a rough figure.
register_preset(Preset(
    id=6, name="lite-tiny", latent="lite-tiny", generator="lite-tiny", latent_channels=64, steps=2,
    selection="ordered", coding="bands",
    description="lite with seeded random tiny models, a random narrow TAEF2 decoder and a hashed caption "
                "embedding, for tests of the wiring only",
    seconds_per_mpx_step=0.1, seconds_per_mpx=3.0, cost_device="a 2-core CPU", max_steps=16,
))
# FLUX: 32.7 TFLOPs per step (transformer + adapter) and 8.7 once (T5, VAE) at 768×512 (docs/flux.md),
# i.e. 83 and 22 TFLOPs per Mpx, on an H100 (989 TFLOP/s dense bf16) at an assumed 40 % utilisation.
FLUX_COST = dict(seconds_per_mpx_step=0.21, seconds_per_mpx=0.06, cost_device="one H100 GPU (estimated from FLOPs)")

register_preset(Preset(
    id=1, name="flux-dev", latent="mbt2018-mean", generator="flux", latent_channels=320, steps=28,
    captioner="qwen2.5-vl", latent_kwargs={"quality": 8},
    generator_kwargs={"model": "black-forest-labs/FLUX.1-dev", "guidance": 3.5},
    description="the paper's setting: CompressAI mbt2018-mean q8 + FLUX.1-dev with the zero-init adapter",
    **FLUX_COST, max_steps=100,
))
register_preset(Preset(
    id=2, name="flux-schnell", latent="mbt2018-mean", generator="flux", latent_channels=320, steps=4,
    captioner="qwen2.5-vl", latent_kwargs={"quality": 8},
    generator_kwargs={"model": "black-forest-labs/FLUX.1-schnell", "guidance": 0.0},
    description="FLUX.1-schnell (few-step) with the same adapter design",
    **FLUX_COST, max_steps=16,
))
register_preset(Preset(
    id=7, name="flux-tiny", latent="mbt2018-mean", generator="flux-tiny", latent_channels=320, steps=2,
    latent_kwargs={"quality": 8, "random_init_seed": 0},
    description="tiny random-config FLUX + random-weight mbt2018-mean, for tests of the wiring only",
    seconds_per_mpx_step=0.25, seconds_per_mpx=0.2, cost_device="a 2-core CPU", max_steps=16,
))
