import math

import pytest
import torch

from gsc.eval import metrics
from gsc.eval.metrics import LEARNED, PerceptualMetrics, ms_ssim, psnr, to_8bit


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
