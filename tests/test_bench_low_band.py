"""benchmarks/lite_reference.py's AV1 columns: the thumbnail search within a budget, and the table."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lite_reference  # noqa: E402

from gsc.eval import av1  # noqa: E402


def _image():
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    return torch.stack([x, y, (x * 6).sin() * 0.5 + 0.5])


def test_av1_best_fits_the_budget_and_picks_the_best_scale_tried():
    x, budget = _image(), 120
    found = lite_reference.av1_best(x, budget, av1.codec(8))
    assert found is not None and found["bytes"] <= budget
    tried = {float(f): v for f, v in found["psnr_by_scale"].items() if v is not None}
    assert found["scale"] in tried and tried[found["scale"]] == max(tried.values())
    assert found["rgb"].shape[-2:] == found["geometry"].luma
    assert lite_reference.av1_best(x, 10, av1.codec(8)) is None     # under the header and a frame


def test_table_means_over_images_with_every_column():
    metrics = {m: 1.0 for m in lite_reference.METRICS}
    sizes = {k: 10 for k in lite_reference.SIZES}
    full = {"0.01": {**sizes, **{k: dict(metrics) for k, _ in lite_reference.COLUMNS}}}
    partial = {"0.01": {**sizes, **{k: dict(metrics, psnr=9.0) for k, _ in lite_reference.COLUMNS[:2]}}}
    text = lite_reference.table({"a": full, "b": partial}, [0.01])
    assert "| 0.01 | psnr | 1.00 |" in text and "1 images" in text
