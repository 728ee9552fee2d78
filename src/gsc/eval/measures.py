"""Measures a ``gsc bench`` run adds to every record beside the metrics: detection agreement, learned metrics.

A measure has ``key`` (part of each record's cache key), ``record(recon, picture) → dict`` (fields of one
record), ``point(records) → dict`` (fields of one operating point, over its images), ``results`` (JSON key →
point key, added to each CompressAI curve) and ``columns`` ((header, point key, format) of the table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import SCORES


def packed(det: dict) -> dict:
    """Detections as JSON lists (boxes to 0.01 px, scores to 1e-5): what the cache keeps."""
    return {"boxes": [[round(float(v), 2) for v in b] for b in det["boxes"]],
            "scores": [round(float(s), 5) for s in det["scores"]], "labels": [int(v) for v in det["labels"]]}


def unpacked(d: dict) -> dict:
    return {"boxes": np.asarray(d["boxes"], np.float64).reshape(-1, 4), "scores": np.asarray(d["scores"], np.float64),
            "labels": np.asarray(d["labels"], np.int64)}


class DetectionAgreement:
    """YOLOv3-tiny on the reconstruction against its detections on the original (``tasks.detection_agreement``):
    COCO mAP@.5 pooled over the images of a point (``yolo-map50``) and per image (``yolo-map50-image-mean``,
    the mean over the images with a reference object)."""

    results = {"yolo-map50": "yolo_map50", "yolo-map50-image-mean": "yolo_map50_image_mean"}
    columns = [(SCORES[key].heading, point, None) for key, point in results.items()]

    def __init__(self, detector=None):
        from .tasks import YOLO_INPUT, YOLO_REF_THRESHOLD, yolo_detector

        self.detector = detector or yolo_detector()
        d = self.detector
        self.key = (f"yolov3-tiny ({d.source}), input {YOLO_INPUT}, score floor {d.score_floor}, NMS IoU "
                    f"{d.nms_iou}, reference ≥ {YOLO_REF_THRESHOLD}")
        self._refs: dict[str, dict] = {}

    def reference(self, picture) -> dict:
        """The original's detections (packed), once per image and process."""
        if picture.sha not in self._refs:
            self._refs[picture.sha] = packed(self.detector.detect(picture.pixels))
        return self._refs[picture.sha]

    def objects(self, picture) -> int:
        from .tasks import YOLO_REF_THRESHOLD

        return sum(s >= YOLO_REF_THRESHOLD for s in self.reference(picture)["scores"])

    def record(self, recon: np.ndarray, picture) -> dict:
        from .tasks import detection_agreement

        det, ref = packed(self.detector.detect(recon)), self.reference(picture)
        return {"det": det, "ref_det": ref, "map50": detection_agreement([unpacked(det)], [unpacked(ref)])}

    def point(self, recs: list[dict]) -> dict:
        from .results import mean
        from .tasks import detection_agreement

        pooled = detection_agreement([unpacked(r["det"]) for r in recs], [unpacked(r["ref_det"]) for r in recs])
        return {"yolo_map50": pooled, "yolo_map50_image_mean": mean(r["map50"] for r in recs)}


class LearnedMetrics:
    """The learned metrics that load here (``metrics.PerceptualMetrics``): LPIPS and DISTS per image, FID and
    KID over the images of a point. For the set-level ones each reconstruction and original is kept in
    ``store`` as a PNG named by its content, so a point's set is rebuilt from cached records too."""

    def __init__(self, perceptual, store: str | Path):
        from importlib.metadata import version

        self.pm, self.store = perceptual, Path(store)
        self.key = f"learned {', '.join(self.pm.names)} (torchmetrics {version('torchmetrics')})"
        self.results = {n: n for n in self.pm.names}
        self.columns = [(n.upper(), n, None) for n in self.pm.names]

    def _keep(self, pixels: np.ndarray, sha: str | None = None) -> str:
        import hashlib

        from PIL import Image

        from ..image import write_atomic

        if sha is None:
            sha = hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).hexdigest()[:16]
        path = self.store / f"{sha}.png"
        if not path.is_file():
            self.store.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda f: Image.fromarray(pixels).save(f, format="PNG"))
        return sha

    def _load(self, sha: str):
        from PIL import Image

        from ..errors import GSCError
        from .classical import as_tensor

        path = self.store / f"{sha}.png"
        if not path.is_file():
            raise GSCError(f"{path} is gone (FID/KID need every image of a point): run again with --fresh")
        return as_tensor(np.asarray(Image.open(path).convert("RGB")))

    def record(self, recon: np.ndarray, picture) -> dict:
        from .classical import as_tensor

        out = self.pm.score_pair(as_tensor(recon), picture.tensor())
        if self.pm.set:
            out.update(recon_sha=self._keep(recon), original_sha=self._keep(picture.pixels, picture.sha))
        return out

    def point(self, recs: list[dict]) -> dict:
        from .results import mean

        out = {n: mean(r.get(n) for r in recs) for n in self.pm.pair}
        if self.pm.set:
            out.update(self.pm.score_sets([self._load(r["recon_sha"]) for r in recs],
                                          [self._load(r["original_sha"]) for r in recs]))
        return out
