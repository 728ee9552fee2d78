"""Full-reference metrics, measured on what a user gets: 8-bit RGB.

Every function takes two (3, H, W) float images in [0, 1] (a leading batch dimension of 1 is accepted),
rounds both to 8 bits, and returns a float, or None where the image is too small for the metric.

| function | JSON key | better | what |
|---|---|---|---|
| ``psnr`` | ``psnr-rgb`` | higher | 10·log10(1 / MSE), MSE over all pixels and channels |
| ``ms_ssim`` | ``ms-ssim-rgb`` | higher | ``pytorch_msssim.ms_ssim``, 11×11 Gaussian window, 5 scales |
| ``psnr_chroma`` | ``psnr-chroma`` | higher | PSNR of the Cb and Cr planes together (BT.601, full range) |
| ``st_lpips`` | ``st-lpips-alex`` / ``st-lpips-vgg`` | lower | shift-tolerant LPIPS (stlpips-pytorch), not LPIPS v0.1 |
| ``flip`` | ``flip`` | lower | mean LDR-FLIP error (flip-evaluator), its default ≈ 67 pixels per degree |
| ``haarpsi`` | ``haarpsi`` | higher | ``piq.haarpsi``, 3 scales |
| ``ms_gmsd`` | ``ms-gmsd`` | lower | ``piq.multi_scale_gmsd(chromatic=True)`` |
| ``ssimulacra2`` | ``ssimulacra2`` | higher | the ``ssimulacra2`` port (opt-in; not libjxl's numbers) |

Each model is built once per process and cached; scores are deterministic for a given thread count.
A metric whose package is missing raises ``MetricUnavailable``, a one-line ``GSCError`` that says
what to install. ``st_lpips_model(net)`` gives the cached ``torch.nn.Module`` itself, differentiable
in its inputs, for training (call it as ``model(x, y, normalize=True)`` on (N, 3, H, W) in [0, 1]).

``Reference`` scores many reconstructions of one original (the classical search): it keeps the
original's ST-LPIPS features, so each candidate costs one network pass instead of two.

``PerceptualMetrics``: LPIPS, DISTS, FID and KID through torchmetrics, each only where its backbone
loads (torchvision plus downloaded weights). A metric that cannot load is reported on one line and
left out; nothing is ever filled in.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from ..errors import GSCError
from ..color import block_drift, chroma

MS_SSIM_MIN_SIDE = 161  # pytorch_msssim: the side must exceed (win_size − 1) · 2⁴ = 160
# Below these sides the networks' reflection padding (ST-LPIPS) or the filters (piq) do not fit.
ST_LPIPS_MIN_SIDE = {"alex": 21, "vgg": 18}
HAARPSI_MIN_SIDE = 16   # piq: 2^(scales + 1) with 3 scales
MS_GMSD_MIN_SIDE = 17   # piq: 2^4 + 1 with its 4 default scales


class MetricUnavailable(GSCError):
    """A metric's package is not installed (or does not load); the message is one line."""


def to_8bit(image: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] float image to the nearest 8-bit level (half up, as ``gsc.image.to_uint8``)."""
    return (image.clamp(0, 1) * 255 + 0.5).floor() / 255


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images as (1, 3, H, W) float64, rounded to 8 bits."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = a.detach().double(), b.detach().double()
    if a.dim() == 3:
        a, b = a[None], b[None]
    if a.dim() != 4 or a.shape[:2] != (1, 3):
        raise ValueError(f"expected (3, H, W) or (1, 3, H, W) images, got {tuple(a.shape)}")
    return to_8bit(a), to_8bit(b)


def _min_side(x: torch.Tensor) -> int:
    return min(x.shape[-2:])


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = _pair(a, b)
    return float((a - b).pow(2).mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two (3, H, W) images in [0, 1]; ``inf`` for identical 8-bit images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10 * math.log10(1.0 / m)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """MS-SSIM of two (3, H, W) images in [0, 1]; None when the image is too small for 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _pair(a, b)
    if _min_side(a) < MS_SSIM_MIN_SIDE:
        return None
    return float(_ms_ssim(a.float(), b.float(), data_range=1.0, size_average=True))


def psnr_chroma(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of the Cb and Cr planes together (one MSE over both; peak-to-peak 1)."""
    a, b = _pair(a, b)
    m = float((chroma(a) - chroma(b)).pow(2).mean())
    return math.inf if m == 0 else 10 * math.log10(1.0 / m)


def colour_drift(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean CIELAB ΔE76 between the 32×32 block means of a and b: casts and wrong patch colours, blind to
    texture (lower is better)."""
    a, b = _pair(a, b)
    return block_drift(a, b)


# --------------------------------------------------------------------------------------------------
# Metrics from other packages. Each import goes through one function that turns a missing package
# into a one-line MetricUnavailable.

INSTALL = {
    "stlpips_pytorch": "pip install --no-deps stlpips-pytorch==0.0.2",
    "piq": "pip install --no-deps piq==0.8.0",
    "flip_evaluator": "pip install flip-evaluator==1.7",
    "ssimulacra2": "pip install ssimulacra2==0.3.0",
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _import(module: str, metric: str, standins: tuple[str, ...] = ()):
    """Import a metric's package, or raise one line saying what to install."""
    if not _installed(module.split(".")[0]):  # find_spec("a.b") would import a: ask for the root only
        raise MetricUnavailable(f"{metric} unavailable: {module.split('.')[0]} is not installed "
                                f"({INSTALL[module.split('.')[0]]}, or scripts/install.sh --test)")
    from .._standins import import_with_standins

    try:
        return import_with_standins(module, standins)
    except Exception as e:  # a broken install: say so on one line, never a traceback
        raise MetricUnavailable(f"{metric} unavailable: {module} does not import ({_reason(e)})") from None


def _stlpips_modules():
    from .._standins import STLPIPS_LEFTOVERS

    stlpips = _import("stlpips_pytorch.stlpips", "ST-LPIPS", STLPIPS_LEFTOVERS)
    return stlpips, _import("stlpips_pytorch.utils", "ST-LPIPS")


def st_lpips_model(net: str = "alex", device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shift-tolerant LPIPS network (weights from the stlpips-pytorch wheel), eval mode, frozen.

    Cached per process and device: every caller shares one object, so never ``.to()`` it or register it
    as a submodule of a model being trained (its dropout would come on). Differentiable in its inputs:
    ``st_lpips_model("vgg", "cuda")(x, y, normalize=True)`` on (N, 3, H, W) in [0, 1] gives (N, 1, 1, 1).
    """
    if net not in ST_LPIPS_MIN_SIDE:
        raise GSCError(f"ST-LPIPS net must be one of {', '.join(ST_LPIPS_MIN_SIDE)}, got {net!r}")
    stlpips, _ = _stlpips_modules()
    return _st_lpips_model(stlpips, net, str(torch.device(device)))


@lru_cache(maxsize=None)
def _st_lpips_model(stlpips, net: str, device: str) -> torch.nn.Module:
    model = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)  # loads the wheel's weights
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _st_lpips_features(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The unit-normalised feature maps of (1, 3, H, W) in [0, 1]: half of ``LPIPS.forward``."""
    _, utils = _stlpips_modules()
    outs = model.net.forward(model.scaling_layer(2 * x - 1))
    return [utils.normalize_tensor(o) for o in outs]


def _st_lpips_distance(model: torch.nn.Module, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> float:
    """The other half: per layer a learned 1×1 weighting of squared differences, averaged over space."""
    total = 0.0
    for lin, a, b in zip(model.lins, fa, fb, strict=True):
        total = total + lin((a - b) ** 2).mean(dim=(2, 3), keepdim=True)
    return float(total)


@torch.no_grad()
def st_lpips(a: torch.Tensor, b: torch.Tensor, net: str = "alex") -> float | None:
    """ST-LPIPS distance (lower is better; 0 for identical images); None below the net's smallest side."""
    a, b = _pair(a, b)
    model = st_lpips_model(net)
    if _min_side(a) < ST_LPIPS_MIN_SIDE[net]:
        return None
    a, b = a.float(), b.float()
    return _st_lpips_distance(model, _st_lpips_features(model, a), _st_lpips_features(model, b))


def _piq():
    from .._standins import TORCHVISION

    return _import("piq", "HaarPSI and MS-GMSD", TORCHVISION)


def _flip():
    return _import("flip_evaluator", "FLIP")


@torch.no_grad()
def haarpsi(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """HaarPSI similarity in [0, 1] (higher is better); None for a side below 16."""
    piq = _piq()
    a, b = _pair(a, b)
    if _min_side(a) < HAARPSI_MIN_SIDE:
        return None
    return float(piq.haarpsi(a, b, data_range=1.0))


@torch.no_grad()
def ms_gmsd(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Multi-scale GMSD, chromatic (lower is better; 0 for identical images); None for a side below 17."""
    piq = _piq()
    a, b = _pair(a, b)
    if _min_side(a) < MS_GMSD_MIN_SIDE:
        return None
    return float(piq.multi_scale_gmsd(a, b, data_range=1.0, chromatic=True))


def flip(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean LDR-FLIP error in [0, 1] (lower is better) of ``a`` against the reference ``b``."""
    flip_evaluator = _flip()
    import numpy as np

    a, b = _pair(a, b)

    def hwc(x):
        return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy().astype(np.float32))

    # evaluate(reference, test, ...): the error map is not symmetric in its arguments
    return float(flip_evaluator.evaluate(hwc(b), hwc(a), "LDR", applyMagma=False)[1])


def ssimulacra2(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIMULACRA 2 of ``a`` against the original ``b`` (100 = identical; higher is better).

    The ``ssimulacra2`` package is a Python port: on libjxl's test pair it gives 20.7 where libjxl gives
    17.4, so its scores are never to be compared with published ones. It reads files, so both images are
    handed over as in-memory PNGs.
    """
    port = _import("ssimulacra2", "SSIMULACRA 2")
    import io

    from PIL import Image

    a, b = _pair(a, b)

    def png(x):
        buf = io.BytesIO()
        Image.fromarray((x[0] * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, format="PNG")
        buf.seek(0)
        return buf

    return float(port.compute_ssimulacra2(png(b), png(a)))


# --------------------------------------------------------------------------------------------------
# The registry: one entry per metric, named as in the per-image records; ``key`` is the JSON key.


@dataclass(frozen=True)
class Metric:
    name: str                 # record key and option name, e.g. "st_lpips_alex"
    key: str                  # CompressAI JSON key, e.g. "st-lpips-alex"
    label: str                # for tables and plots
    higher_is_better: bool
    fn: Callable[[torch.Tensor, torch.Tensor], float | None] | None = None   # None: a score (``SCORES``)
    check: Callable[[], object] = lambda: None  # raises MetricUnavailable where it cannot run

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def heading(self) -> str:
        """The label with its arrow: a table's column, a plot's axis."""
        return f"{self.label} {self.arrow}"


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("psnr", "psnr-rgb", "PSNR (dB)", True, psnr),
    Metric("ms_ssim", "ms-ssim-rgb", "MS-SSIM", True, ms_ssim),
    Metric("psnr_chroma", "psnr-chroma", "chroma PSNR (dB)", True, psnr_chroma),
    Metric("colour_drift", "colour-drift", "colour drift (ΔE, 32×32)", False, colour_drift),
    Metric("st_lpips_alex", "st-lpips-alex", "ST-LPIPS (alex)", False, lambda a, b: st_lpips(a, b, "alex"),
           lambda: st_lpips_model("alex")),
    Metric("st_lpips_vgg", "st-lpips-vgg", "ST-LPIPS (vgg)", False, lambda a, b: st_lpips(a, b, "vgg"),
           lambda: st_lpips_model("vgg")),
    Metric("flip", "flip", "FLIP", False, flip, _flip),
    Metric("haarpsi", "haarpsi", "HaarPSI", True, haarpsi, _piq),
    Metric("ms_gmsd", "ms-gmsd", "MS-GMSD", False, ms_gmsd, _piq),
    Metric("ssimulacra2", "ssimulacra2", "SSIMULACRA 2 (port)", True, ssimulacra2,
           lambda: _import("ssimulacra2", "SSIMULACRA 2")),
]}
# Scores measured otherwise than on one pair of images (learned metrics over sets, analysis models on the
# reconstructions: gsc.eval.tasks, gsc.eval.measures), by JSON key: their labels, for tables and plots.
SCORES: dict[str, Metric] = {key: Metric(key.replace("-", "_"), key, label, up) for key, label, up in [
    ("lpips", "LPIPS", False), ("dists", "DISTS", False), ("fid", "FID", False), ("kid", "KID", False),
    ("yolo-map50", "YOLOv3-tiny mAP@.5 (set)", True), ("yolo-map50-image-mean", "YOLOv3-tiny mAP@.5 (per image)", True),
    ("depth-delta1", "depth δ1", True), ("depth-absrel", "depth AbsRel", False), ("seg-miou", "seg mIoU", True),
    ("seg-pixel-accuracy", "seg pixel accuracy", True), ("det-map", "DETR mAP@[.5:.95]", True),
    ("det-map50", "DETR mAP@.5", True),
]}
BASIC = ["psnr", "ms_ssim"]
# What gsc eval and bench-classical report unless told otherwise (ST-LPIPS vgg costs ≈ 5× alex: a flag).
DEFAULT = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift", "st_lpips_alex", "flip", "haarpsi", "ms_gmsd"]


def get_metric(name: str) -> Metric:
    """By record name (``st_lpips_alex``), JSON key (``st-lpips-alex``) or short name (``st-lpips``)."""
    n = name.strip().lower().replace("-", "_")
    n = {"st_lpips": "st_lpips_alex", "psnr_rgb": "psnr", "ms_ssim_rgb": "ms_ssim"}.get(n, n)
    if n not in METRICS:
        raise GSCError(f"unknown metric {name!r}; choose from {', '.join(m.key for m in METRICS.values())}")
    return METRICS[n]


def parse_metrics(text: str, st_lpips_vgg: bool = False) -> list[str]:
    """``--metrics`` (comma-separated JSON keys or names) plus ``--st-lpips-vgg`` → record names."""
    names = [get_metric(v).name for v in text.split(",") if v.strip()]
    if st_lpips_vgg:
        names.append("st_lpips_vgg")
    if not names:
        raise GSCError("--metrics needs at least one metric")
    return list(dict.fromkeys(names))


def available(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The metrics of ``names`` that can run here, and one line for each that cannot."""
    ok, missing = [], {}
    for n in names:
        try:
            METRICS[n].check()
        except MetricUnavailable as e:
            missing[n] = str(e)
            continue
        ok.append(n)
    return ok, missing


def metric_versions() -> dict[str, str | None]:
    """The versions the scores depend on, for cache keys and records."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torch", "pytorch-msssim", "stlpips-pytorch", "piq", "flip-evaluator", "ssimulacra2"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def score(recon: torch.Tensor, original: torch.Tensor, names: list[str]) -> dict[str, float | None]:
    """Each named metric of ``recon`` against ``original``, by record name."""
    return {n: METRICS[n].fn(recon, original) for n in names}


class Reference:
    """One original scored against many reconstructions; keeps the original's ST-LPIPS features."""

    def __init__(self, original: torch.Tensor):
        self.original = original
        self._features: dict[str, list[torch.Tensor]] = {}

    @torch.no_grad()
    def score(self, recon: torch.Tensor, names: list[str]) -> dict[str, float | None]:
        out = {}
        for n in names:
            if n.startswith("st_lpips_"):
                net = n.removeprefix("st_lpips_")
                r, o = _pair(recon, self.original)
                if _min_side(o) < ST_LPIPS_MIN_SIDE[net]:
                    out[n] = None
                    continue
                model = st_lpips_model(net)
                if net not in self._features:
                    self._features[net] = _st_lpips_features(model, o.float())
                out[n] = _st_lpips_distance(model, _st_lpips_features(model, r.float()), self._features[net])
            else:
                out[n] = METRICS[n].fn(recon, self.original)
        return out


# --------------------------------------------------------------------------------------------------
# Learned metrics through torchmetrics. Each factory builds a torchmetrics object or raises; ``kind``
# says whether it scores one image pair ("pair") or compares the set of reconstructions with the set of
# originals ("set").


def _lpips():
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)


def _dists():
    from torchmetrics.image.dists import DeepImageStructureAndTextureSimilarity

    return DeepImageStructureAndTextureSimilarity()


def _fid():
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=2048, normalize=True)


def _kid():
    from torchmetrics.image.kid import KernelInceptionDistance

    # subset_size is set per set in ``compute`` (it must not exceed the number of images)
    return KernelInceptionDistance(feature=2048, normalize=True, subset_size=2)


LEARNED = {
    # name: (factory, kind, needs)
    "lpips": (_lpips, "pair", "torchvision + AlexNet/LPIPS weights"),
    "dists": (_dists, "pair", "torchvision + VGG16/DISTS weights"),
    "fid": (_fid, "set", "torch-fidelity + Inception weights"),
    "kid": (_kid, "set", "torch-fidelity + Inception weights"),
}


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = msg.split(". ")[0].rstrip(".")  # the first sentence says what is missing; the rest is advice
    return f"{type(e).__name__}: {msg[:200]}"


class PerceptualMetrics:
    """The learned metrics that load here. ``unavailable`` maps each one that does not to one line."""

    def __init__(self, names: list[str] | None = None):
        self.pair: dict[str, object] = {}
        self.set: dict[str, object] = {}
        self.unavailable: dict[str, str] = {}
        for name in names if names is not None else list(LEARNED):
            factory, kind, needs = LEARNED[name]
            try:
                metric = factory()
                if kind == "pair":  # some build their backbone on first use (DISTS): probe once
                    probe = torch.linspace(0, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)
                    metric(probe, probe.flip(-1))
                    metric.reset()
            except Exception as e:  # any failure to build (import, download, weights) = unavailable
                self.unavailable[name] = f"{name.upper()} unavailable (needs {needs}): {_reason(e)}"
                continue
            (self.pair if kind == "pair" else self.set)[name] = metric

    @property
    def names(self) -> list[str]:
        return list(self.pair) + list(self.set)

    @torch.no_grad()
    def score_pair(self, recon: torch.Tensor, original: torch.Tensor) -> dict[str, float]:
        out = {}
        for name, metric in self.pair.items():
            metric.reset()
            out[name] = float(metric(to_8bit(recon)[None].float(), to_8bit(original)[None].float()))
        return out

    @torch.no_grad()
    def score_sets(self, recons: list[torch.Tensor], originals: list[torch.Tensor]) -> dict[str, float]:
        """Set-level metrics (FID, KID) of reconstructions against originals; needs ≥ 2 images."""
        out = {}
        if len(recons) < 2:
            return out
        for name, metric in self.set.items():
            metric.reset()
            if hasattr(metric, "subset_size"):
                metric.subset_size = min(50, len(recons))
            for r, o in zip(recons, originals, strict=True):
                metric.update(to_8bit(o)[None].float(), real=True)
                metric.update(to_8bit(r)[None].float(), real=False)
            value = metric.compute()
            out[name] = float(value[0] if isinstance(value, tuple) else value)
        return out
