import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gsc.errors import GSCError

from gsc.eval import metrics
from gsc.eval.metrics import LEARNED, PerceptualMetrics, ms_ssim, psnr, to_8bit

from conftest import SHARED_DATA


def _image(seed: int, h: int = 192, w: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, h // 16, w // 16, generator=g), size=(h, w),
                                             mode="bilinear", align_corners=False)[0]
    return to_8bit(smooth * 0.8 + 0.2 * torch.rand(3, h, w, generator=g))


def test_psnr_of_known_mse():
    a = torch.zeros(3, 32, 48)
    b = torch.full((3, 32, 48), 16 / 255)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / 16), abs=1e-9)
    # half the pixels off by 10 levels: MSE = (10/255)² / 2
    c = a.clone()
    c[:, :16] = 10 / 255
    assert psnr(a, c) == pytest.approx(10 * math.log10(1 / ((10 / 255) ** 2 / 2)), abs=1e-9)


def test_psnr_measures_8bit_images():
    a = _image(0)
    assert psnr(a, a) == math.inf
    # a shift below half an 8-bit level rounds away: what the user gets is identical
    assert psnr(a, (a + 0.4 / 255).clamp(0, 1)) == math.inf
    assert psnr(a, (a + 0.6 / 255).clamp(0, 1)) < 60


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))


def test_ms_ssim_identical_is_one_and_matches_pytorch_msssim():
    from pytorch_msssim import ms_ssim as reference

    a, b = _image(1), _image(2)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    noisy = to_8bit((a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1))
    ref = float(reference(noisy[None], a[None], data_range=1.0, size_average=True))
    assert ms_ssim(noisy, a) == pytest.approx(ref, abs=1e-6)
    # more noise, lower score; unrelated images lower still
    noisier = to_8bit((a + 0.2 * torch.randn(a.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1))
    assert ms_ssim(a, b) < ms_ssim(noisier, a) < ms_ssim(noisy, a) < 1


def test_ms_ssim_too_small_is_none():
    a = _image(5, 160, 256)
    assert ms_ssim(a, a) is None


def test_learned_metrics_report_unavailable_on_one_line():
    pm = PerceptualMetrics()
    assert set(pm.unavailable) | set(pm.names) == set(LEARNED)
    for name, line in pm.unavailable.items():
        assert "\n" not in line and line.startswith(f"{name.upper()} unavailable")
    try:
        import torchvision  # noqa: F401
    except Exception:
        # torchmetrics' LPIPS and DISTS need torchvision: without it they must be reported, not invented
        assert {"lpips", "dists"} <= set(pm.unavailable)


def test_learned_metric_plumbing_with_a_real_torchmetrics_metric(monkeypatch):
    from torchmetrics.image import PeakSignalNoiseRatio

    monkeypatch.setattr(metrics, "LEARNED", {"psnr_tm": (lambda: PeakSignalNoiseRatio(data_range=1.0), "pair", "")})
    pm = PerceptualMetrics()
    assert pm.names == ["psnr_tm"] and not pm.unavailable
    a = _image(6)
    b = to_8bit((a + 0.03).clamp(0, 1))
    assert pm.score_pair(b, a)["psnr_tm"] == pytest.approx(psnr(b, a), abs=1e-3)


# --------------------------------------------------------------------------------------------------
# The metrics from other packages, on a real image pair (kodim23).

KODAK = SHARED_DATA / "kodak"
kodak = pytest.mark.shared_data("kodak/kodim23.png")


def _u8_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).permute(2, 0, 1) / 255


@pytest.fixture(scope="module")
def kodim23():
    from PIL import Image

    with Image.open(KODAK / "kodim23.png") as im:
        return np.asarray(im.convert("RGB"))


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _down_up(a: np.ndarray, factor: int) -> np.ndarray:
    from PIL import Image

    h, w = a.shape[:2]
    small = Image.fromarray(a).resize((w // factor, h // factor), Image.LANCZOS)
    return np.asarray(small.resize((w, h), Image.BICUBIC))


@kodak
@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_identical_images_score_best(name, kodim23, one_thread):
    crop = kodim23[160:336, 256:512]  # 256×176 of a real photo: above every metric's minimum size, and quick
    m = metrics.METRICS[name]
    x = _u8_tensor(crop)
    same = m.fn(x, x.clone())
    worse = m.fn(_u8_tensor(_jpeg(crop, 20)), x)
    best = {"psnr": math.inf, "psnr_chroma": math.inf, "ms_ssim": 1.0, "haarpsi": 1.0, "ssimulacra2": 100.0}.get(name, 0.0)
    assert same == pytest.approx(best, abs=1e-6)
    assert (worse < same) if m.higher_is_better else (worse > same)
    assert m.fn(_u8_tensor(_jpeg(crop, 20)), x) == worse  # deterministic


@kodak
def test_st_lpips_prefers_jpeg_blocks_to_a_blurry_thumbnail(kodim23, one_thread):
    """A sanity ranking a perceptual metric should pass: JPEG q10 (sharper, blocky) beats a 16× downscale."""
    x = _u8_tensor(kodim23)
    jpeg, thumb = _u8_tensor(_jpeg(kodim23, 10)), _u8_tensor(_down_up(kodim23, 16))
    s_jpeg, s_thumb = metrics.st_lpips(jpeg, x), metrics.st_lpips(thumb, x)
    assert s_jpeg < s_thumb
    assert 0.08 < s_jpeg < 0.2 and 0.2 < s_thumb < 0.45  # ≈ 0.135 and ≈ 0.31 with these files
    # the Reference keeps the original's features: the same numbers, one network pass per image
    ref = metrics.Reference(x)
    assert ref.score(jpeg, ["st_lpips_alex"])["st_lpips_alex"] == pytest.approx(s_jpeg, abs=1e-6)
    assert ref.score(thumb, ["st_lpips_alex", "psnr"]) == pytest.approx(
        {"st_lpips_alex": s_thumb, "psnr": metrics.psnr(thumb, x)}, abs=1e-6)


@kodak
def test_st_lpips_is_the_packages_network_with_its_weights(kodim23, one_thread):
    import sys

    model = metrics.st_lpips_model("alex")
    assert metrics.st_lpips_model("alex") is model  # cached
    stlpips, _ = metrics._stlpips_modules()
    for name in ("torchvision", "IPython", "torchsummary"):
        assert name not in sys.modules  # the stand-ins were removed after the import
    # every parameter is loaded from the wheel: the only keys the file lacks are ``lins``, aliases of lin0..4
    weights = Path(stlpips.__file__).parent / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
    saved = torch.load(weights, map_location="cpu")
    missing = set(model.state_dict()) - set(saved)
    assert missing and all(k.startswith("lins.") for k in missing)
    for k, v in saved.items():
        assert torch.equal(model.state_dict()[k], v)
    # our two halves (features, distance) equal the package's forward
    crop = _u8_tensor(kodim23[100:292, 200:456])
    other = _u8_tensor(_down_up(kodim23, 8)[100:292, 200:456])
    with torch.no_grad():
        theirs = float(model(other[None], crop[None], normalize=True))
    assert metrics.st_lpips(other, crop) == pytest.approx(theirs, rel=1e-6)


@kodak
def test_st_lpips_model_is_differentiable_for_training(kodim23, one_thread):
    model = metrics.st_lpips_model("alex")
    x = _u8_tensor(kodim23[:64, :96])[None]
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    y.requires_grad_(True)
    loss = model(y, x, normalize=True).mean()
    loss.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in model.parameters())


def test_psnr_chroma_of_known_changes():
    a = _image(7)
    # a grey shift moves luma only: chroma is untouched
    grey = to_8bit((a + 10 / 255).clamp(0, 1))
    inside = (a <= 1 - 10 / 255).all(0)
    a_in, g_in = a * inside, grey * inside
    assert metrics.psnr_chroma(g_in, a_in) > 200 and psnr(g_in, a_in) < 60  # (the rows sum to 0 up to rounding)
    # blue up by d: ΔCb = 0.5·d, ΔCr = −0.081312·d; MSE = mean over both planes
    b = torch.zeros(3, 32, 32)
    c = b.clone()
    c[2] = 40 / 255
    d = 40 / 255
    expected = 10 * math.log10(1 / ((0.25 + 0.081312 ** 2) * d * d / 2))
    assert metrics.psnr_chroma(c, b) == pytest.approx(expected, abs=1e-9)


def test_small_images_give_none_not_an_error():
    a = _image(8, 20, 20)
    b = to_8bit((a + 0.1).clamp(0, 1))
    assert metrics.st_lpips(b, a, "alex") is None and metrics.st_lpips(b, a, "vgg") is not None
    assert metrics.ms_gmsd(a[:, :16, :16], b[:, :16, :16]) is None
    assert metrics.haarpsi(a[:, :15, :15], b[:, :15, :15]) is None


def test_a_missing_package_is_one_line(monkeypatch):
    monkeypatch.setattr(metrics, "_installed", lambda module: module not in ("stlpips_pytorch", "flip_evaluator"))
    with pytest.raises(metrics.MetricUnavailable) as e:
        metrics.st_lpips(torch.zeros(3, 32, 32), torch.zeros(3, 32, 32))
    assert "\n" not in str(e.value) and "stlpips-pytorch==0.0.2" in str(e.value)
    ok, missing = metrics.available(list(metrics.DEFAULT))
    assert set(missing) == {"st_lpips_alex", "flip"} and "st_lpips_alex" not in ok and "haarpsi" in ok
    assert all("\n" not in line and "unavailable" in line for line in missing.values())


def test_metric_names_agree_everywhere():
    from gsc.eval.commands import DEFAULT_METRICS
    from gsc.eval.plot import panels
    from gsc.eval.results import METRIC_KEYS

    for m in metrics.METRICS.values():
        assert METRIC_KEYS[m.name] == m.key and dict(panels())[m.key] == m.heading
    assert metrics.parse_metrics(DEFAULT_METRICS) == metrics.DEFAULT
    assert metrics.parse_metrics("psnr,st-lpips", st_lpips_vgg=True) == ["psnr", "st_lpips_alex", "st_lpips_vgg"]
    with pytest.raises(GSCError, match="unknown metric 'lpips2'"):
        metrics.parse_metrics("psnr,lpips2")
