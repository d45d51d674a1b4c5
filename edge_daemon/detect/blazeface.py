"""Face detection with MediaPipe's BlazeFace models, run directly with LiteRT on CPU.

The two ``.tflite`` models are vendored in ``edge_daemon/models`` (Apache-2.0, from the
mediapipe 0.10.21 wheel; ``scripts/fetch_blazeface.py`` re-derives and checks them).
They run in a LiteRT interpreter (``ai-edge-litert``, XNNPACK kernels) and the graph
around them is re-implemented here with numpy: letterboxing, SSD anchors, box decoding
and weighted non-maximum suppression, with the parameters of MediaPipe's own
``face_detection_{short,full}_range_common.pbtxt`` graphs. Doing it ourselves instead
of through MediaPipe's Tasks runtime halves the cost per frame (the calculator graph,
its image conversion and a full-resolution resize were most of it), lets any thread
use a detector, and drops a dependency that had to be installed with ``--no-deps``.
``tests/detect/test_blazeface_parity.py`` checks the boxes against MediaPipe's.

Trade-off between the two models: short range (128x128 input) costs about half as much
and misses faces smaller than about a fifth of the frame; full range (192x192, sparse)
finds faces down to a few percent of the frame, which a surveillance camera needs, but
misses many faces that fill a large part of it, which a driver-monitoring camera or a
webcam sees. Measured on the labelled in-the-wild photos (2,812 head shots, each centred
on a grey canvas; ``python -m trainer.evaluate_e2e nano --detector MODEL --canvas C
--conditions none``): full range finds 60% of the faces when the photo fills 77% of the
frame (canvas 1.3x), 91% at 2.5x and 98.3% at 3.5x; short range 100%, 99.96% and 98.8%.
``both``, the default, runs the two and keeps full range's box wherever both find a
face, so the crops the emotion model was trained on do not change; short range adds
only the faces full range missed (100%, 99.96% and 99.7%), for about 1.5x the detector's
cost per frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from edge_daemon.boxes import iou_matrix
from edge_daemon.types import Detections

if TYPE_CHECKING:  # only read as attributes; keeps pydantic out of the detector's imports
    from edge_daemon.config import DetectorConfig

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


class DetectorError(Exception):
    """The detector cannot be created; the message says how to fix it."""


@dataclass(frozen=True)
class BlazeFaceSpec:
    """How one BlazeFace model's raw tensors are laid out (MediaPipe's graph options)."""

    file: str
    input_size: int  # square input, pixels
    # One (stride, anchors per cell) per distinct feature map, in output order.
    grids: tuple[tuple[int, int], ...]
    num_boxes: int

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.file


SPECS = {
    # strides 8, 16, 16, 16 with two anchors per layer and cell: 16x16x2 + 8x8x6 = 896.
    "short_range": BlazeFaceSpec("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), 896),
    # one layer of stride 4, one anchor per cell: 48x48 = 2304.
    "full_range": BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, ((4, 1),), 2304),
}
MODEL_FILES = {name: spec.path for name, spec in SPECS.items()}
# detector.model -> the networks it runs, the one whose boxes win first.
DetectorModel = Literal["both", "full_range", "short_range"]
DEFAULT_MODEL: DetectorModel = "both"
PARTS: dict[str, tuple[str, ...]] = {
    "full_range": ("full_range",),
    "short_range": ("short_range",),
    "both": ("full_range", "short_range"),
}

#: With ``both``: the score a face found only by the second network (short range) needs,
#: never below ``min_confidence``. Its false faces score higher than full range's (a round
#: mission patch on a suit: 0.66 against full range's 0.36), while 96-97% of the real
#: close faces it adds to full range's score 0.75 or more (shared in-the-wild photos at
#: 1.3x and 2.5x canvases): so additions need more evidence than confirmations.
DEFAULT_ADDED_MIN_CONFIDENCE = 0.75

RAW_SCORE_CLIP = 80.0  # MediaPipe clips at 100; exp(100) overflows float32, same result
NMS_IOU = 0.3  # weighted NMS merges boxes overlapping more than this (MediaPipe's value)


def ssd_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """Anchor centres [num_boxes, 2] (x, y) in [0, 1]; every anchor has size 1x1.

    MediaPipe's ``SsdAnchorsCalculator`` with ``fixed_anchor_size``: for each feature
    map, row by row and cell by cell, ``per_cell`` anchors at the cell centre.
    """
    out = []
    for stride, per_cell in spec.grids:
        n = -(-spec.input_size // stride)  # ceil
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    anchors = np.concatenate(out).astype(np.float32)
    if len(anchors) != spec.num_boxes:  # a wrong spec, not a user error
        raise AssertionError(f"{spec.file}: {len(anchors)} anchors, model has {spec.num_boxes}")
    return anchors


def decode(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: int,
    min_score: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs [N, 16] and [N] -> boxes xyxy [K, 4] in input-tensor pixels, scores [K].

    The regressor's first four values are the box centre offset and size in input
    pixels relative to the anchor; the other twelve (six keypoints) are not used.
    """
    logits = np.clip(raw_scores.reshape(-1), -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    if not len(keep):
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    r = raw_boxes.reshape(len(logits), -1)[keep, :4]
    # A box must have a finite, positive width and height: a regressor output of zero,
    # negative, NaN or infinite size is no face, and a zero-area box has IoU 0 with
    # itself, which once kept weighted NMS from ever removing it.
    ok = np.isfinite(r).all(axis=1) & (r[:, 2] > 0) & (r[:, 3] > 0)
    if not ok.all():
        keep, r = keep[ok], r[ok]
        if not len(keep):
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    with np.errstate(over="ignore"):  # a huge finite regressor output overflows to inf
        centre = anchors[keep] * input_size + r[:, :2]
        half = r[:, 2:4] / 2
        out = np.concatenate([centre - half, centre + half], axis=1)
    finite = np.isfinite(out).all(axis=1)
    return out[finite], scores[keep][finite]


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray]:
    """BlazeFace's tie resolution: each cluster becomes the score-weighted mean box.

    Highest score first; every remaining box overlapping it by more than
    ``iou_threshold`` joins its cluster; the cluster keeps the top score. Stable for
    the few dozen candidates a frame yields.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    out_boxes, out_scores = [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        top = remaining[0]
        overlap = iou_matrix(boxes[top], boxes[remaining])[0]
        # The top box always joins (and leaves with) its own cluster, whatever its IoU
        # with itself (0 for a degenerate box): every pass removes at least one box, so
        # the loop ends after at most len(scores) passes by construction.
        joins = overlap > iou_threshold
        joins[0] = True
        members = remaining[joins]
        # float64: a cluster of huge (finite) float32 boxes would overflow its sum.
        w = scores[members].astype(np.float64)
        total = float(w.sum())
        merged = (boxes[members] * w[:, None]).sum(axis=0) / total if total > 0 else boxes[top]
        out_boxes.append(merged)
        out_scores.append(scores[top])
        remaining = remaining[~joins]
    return np.array(out_boxes, np.float32).reshape(-1, 4), np.array(out_scores, np.float32)


@dataclass(frozen=True)
class DetectorParams:
    model: str = DEFAULT_MODEL
    min_confidence: float = 0.6
    max_faces: int = 20
    min_face_px: int = 20  # in original frame pixels
    threads: int = 1
    # Faces scored from this up to min_confidence come back as ``weak_xyxy`` (None or
    # >= min_confidence: none). The tracker's setting: see TrackerConfig.
    weak_min_confidence: float | None = None
    # A face only a later network finds needs max(this, min_confidence).
    added_min_confidence: float = DEFAULT_ADDED_MIN_CONFIDENCE

    @classmethod
    def from_config(
        cls, cfg: DetectorConfig, weak_min_confidence: float | None = None
    ) -> DetectorParams:
        return cls(
            model=cfg.model,
            min_confidence=cfg.min_confidence,
            max_faces=cfg.max_faces,
            min_face_px=cfg.min_face_px,
            threads=cfg.threads,
            weak_min_confidence=weak_min_confidence,
            added_min_confidence=cfg.added_min_confidence,
        )


@dataclass
class DetectorCounters:
    frames: int = 0
    faces: int = 0
    too_small: int = 0  # detections dropped by min_face_px
    over_cap: int = 0  # detections dropped by max_faces
    weak: int = 0  # faces below min_confidence kept to extend tracks (weak_xyxy)


def letterbox(image_bgr: np.ndarray, size: int, out: np.ndarray) -> tuple[float, float, float]:
    """Fit the frame, aspect kept, centred in ``out`` [size, size, 3] float32 RGB in [-1, 1].

    Returns (scale, pad_x, pad_y): tensor pixel = frame pixel * scale + pad. The border
    is black (pixel 0, so -1 after normalisation), as MediaPipe's ``BORDER_ZERO`` pads
    before it normalises.
    """
    h, w = image_bgr.shape[:2]
    scale = size / max(w, h)
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    if w > 2 * rw and h > 2 * rh:
        # Anti-aliased and cheap: bilinear to twice the target, then an exact 2:1 area
        # average. A direct INTER_AREA resize at a fractional ratio costs ~50x more
        # (about 6 ms for 1280x720 -> 192x108 here); plain bilinear aliases.
        mid = cv2.resize(image_bgr, (2 * rw, 2 * rh), interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(mid, (rw, rh), interpolation=cv2.INTER_AREA)
    else:
        small = cv2.resize(image_bgr, (rw, rh), interpolation=cv2.INTER_LINEAR)
    px, py = (size - rw) // 2, (size - rh) // 2
    out.fill(-1.0)
    region = out[py : py + rh, px : px + rw]
    region[...] = small[:, :, ::-1]  # BGR -> RGB while converting to float
    region *= 1 / 127.5
    region -= 1.0
    return scale, float(px), float(py)


class _Runner:
    """One LiteRT interpreter with its tensor indices and input buffer."""

    def __init__(self, spec: BlazeFaceSpec, interpreter_cls: type, threads: int) -> None:
        try:
            it = interpreter_cls(model_path=str(spec.path), num_threads=threads)
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"{spec.path}: cannot load ({exc})") from exc
        inp = it.get_input_details()[0]
        expected = [1, spec.input_size, spec.input_size, 3]
        if list(inp["shape"]) != expected:
            raise DetectorError(f"{spec.path}: input {list(inp['shape'])}, want {expected}")
        outs = sorted(it.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self.interpreter = it
        self.in_index = inp["index"]
        self.box_index, self.score_index = outs[0]["index"], outs[1]["index"]
        self.input = np.zeros(expected, np.float32)

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        it = self.interpreter
        it.set_tensor(self.in_index, self.input)
        it.invoke()  # releases the GIL: other cameras run meanwhile
        return it.get_tensor(self.box_index), it.get_tensor(self.score_index)


class InterpreterPool:
    """Up to ``size`` slots of LiteRT interpreters, shared by every camera; a slot holds
    one interpreter of each network ``detector.model`` runs (two for ``both``).

    An interpreter must never run two inferences at once, and each one holds about
    13 MB (its arena and XNNPACK's packed weights): one per camera cost 100 MB with
    eight cameras. Cameras borrow one for the length of a detection instead; with as
    many interpreters as cores, a camera waits only when every core is already
    detecting. Interpreters are created on first need, so an idle pool costs nothing.
    """

    def __init__(self, model: str = DEFAULT_MODEL, size: int = 1, threads: int = 1) -> None:
        parts = PARTS.get(model)
        if parts is None:
            raise DetectorError(f"detector.model {model!r} (allowed: {list(PARTS)})")
        specs = tuple(SPECS[p] for p in parts)
        for spec in specs:
            if not spec.path.is_file():
                raise DetectorError(
                    f"bundled detector model missing: {spec.path} (reinstall the package)"
                )
        if size < 1:
            raise ValueError(f"InterpreterPool size must be >= 1, got {size}")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # LiteRT's info lines
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DetectorError(
                f"ai-edge-litert is not importable ({exc}); install the package's "
                "dependencies (`pip install -e .`)"
            ) from exc
        self.specs = specs
        self.model = model
        self.size = size
        self.threads = threads
        self._interpreter_cls = Interpreter
        # One item per slot: an interpreter of each part, borrowed together.
        self._free: queue.SimpleQueue[tuple[_Runner, ...]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._created = 0
        self.waits = 0  # borrows that found every interpreter busy (contention)

    @property
    def created(self) -> int:
        return self._created

    @contextlib.contextmanager
    def borrow(self) -> Iterator[tuple[_Runner, ...]]:
        """An interpreter of each part (:data:`PARTS`), for this thread alone until the
        ``with`` block ends."""
        try:
            runner = self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                make = self._created < self.size
                if make:
                    self._created += 1
            if make:
                try:
                    runner = tuple(
                        _Runner(spec, self._interpreter_cls, self.threads) for spec in self.specs
                    )
                except BaseException:
                    with self._lock:
                        self._created -= 1
                    raise
            else:
                self.waits += 1  # approximate under races; a gauge, not an invariant
                runner = self._free.get()
        try:
            yield runner
        finally:
            self._free.put(runner)


def merge_networks(
    decoded: list[tuple[np.ndarray, np.ndarray]],
    min_confidence: float,
    added_min_confidence: float = 0.0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per network's decoded (boxes, scores), in :data:`PARTS` order -> the merged faces
    (sorted by score) and the candidates (unmerged below ``min_confidence``, merged
    below ``added_min_confidence`` from a later network).

    Each network's faces at ``min_confidence`` go through weighted NMS on their own, as
    with that network alone, so its boxes are the same. A later network's face is kept
    only where its score reaches ``added_min_confidence`` too and it overlaps none of
    the faces kept so far (IoU at most :data:`NMS_IOU`). So the first network's boxes
    never move, and a second one only adds the faces the first missed, with its box."""
    kept_b: list[np.ndarray] = []
    kept_s: list[np.ndarray] = []
    weak_b: list[np.ndarray] = []
    weak_s: list[np.ndarray] = []
    for k, (boxes, scores) in enumerate(decoded):
        strong = scores >= min_confidence
        weak_b.append(boxes[~strong].reshape(-1, 4))
        weak_s.append(scores[~strong])
        b, s = weighted_nms(boxes[strong], scores[strong])
        if k:
            enough = s >= added_min_confidence
            weak_b.append(b[~enough])
            weak_s.append(s[~enough])
            b, s = b[enough], s[enough]
            have = np.concatenate(kept_b)
            if len(b) and len(have):
                new = (iou_matrix(b, have) <= NMS_IOU).all(axis=1)
                b, s = b[new], s[new]
        kept_b.append(b.reshape(-1, 4))
        kept_s.append(s)
    boxes, scores = np.concatenate(kept_b), np.concatenate(kept_s)
    order = np.argsort(-scores, kind="stable")
    return (boxes[order], scores[order]), (np.concatenate(weak_b), np.concatenate(weak_s))


class FaceDetector:
    """One camera's detector: its thresholds and counters, and a shared interpreter pool.

    Safe to call from any thread; the pool serialises use of each interpreter. Without
    a ``pool`` the detector gets its own pool of one interpreter.
    """

    def __init__(self, params: DetectorParams, pool: InterpreterPool | None = None) -> None:
        self.params = params
        self.counters = DetectorCounters()
        if pool is None:
            pool = InterpreterPool(params.model, 1, params.threads)
        elif pool.model != params.model:
            raise DetectorError(f"pool runs {pool.model!r}, detector wants {params.model!r}")
        self.pool = pool
        self._anchors = [ssd_anchors(spec) for spec in pool.specs]

    def open(self) -> None:
        """Load the interpreters now (the first load costs tens of ms), not at first frame."""
        with self.pool.borrow():
            pass

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Faces in a BGR frame, boxes in that frame's pixel coordinates.

        Faces at or above ``min_confidence`` are decoded and merged exactly as without a
        weak floor; the weak ones (from ``weak_min_confidence``) are merged among
        themselves after dropping those that overlap a strong face (they belong to its
        cluster), so a weak floor never moves a strong box. With two networks
        (``both``) the first's faces are kept as they are and the second's add only
        faces that overlap none of them, at ``added_min_confidence``: a face both find
        keeps the first's box."""
        h, w = image_bgr.shape[:2]
        p = self.params
        floor = p.min_confidence
        if p.weak_min_confidence is not None:
            floor = min(floor, p.weak_min_confidence)
        decoded = []
        with self.pool.borrow() as runners:
            for runner, anchors in zip(runners, self._anchors, strict=True):
                size = runner.input.shape[1]
                scale, px, py = letterbox(image_bgr, size, runner.input[0])
                raw_boxes, raw_scores = runner.run()
                # decode() copies what it keeps, so the interpreter may be reused now.
                boxes, scores = decode(raw_boxes, raw_scores, anchors, size, floor)
                offset = np.array([px, py, px, py], np.float32)
                # Into frame pixels before merging (the networks' inputs differ): an
                # affine map, so weighted NMS gives the same boxes as in tensor pixels.
                decoded.append(((boxes.reshape(-1, 4) - offset) / scale, scores))
        self.counters.frames += 1
        (boxes, scores), (weak_boxes, weak_scores) = merge_networks(
            decoded, p.min_confidence, p.added_min_confidence
        )
        if floor >= p.min_confidence:
            # No weak floor: a later network's face below added_min_confidence (but at
            # min_confidence, so decoded) is dropped like any other candidate.
            weak_boxes, weak_scores = weak_boxes[:0], weak_scores[:0]
        if len(weak_boxes):
            if len(boxes):
                apart = (iou_matrix(weak_boxes, boxes) <= NMS_IOU).all(axis=1)
                weak_boxes, weak_scores = weak_boxes[apart], weak_scores[apart]
            weak_boxes, _ = weighted_nms(weak_boxes, weak_scores)
        boxes, scores = self._keep(self._clip(boxes, w, h), scores, count=True)
        weak_boxes, _ = self._keep(
            self._clip(weak_boxes, w, h), np.zeros(len(weak_boxes), np.float32), count=False
        )
        self.counters.faces += len(boxes)
        self.counters.weak += len(weak_boxes)
        if not len(boxes) and not len(weak_boxes):
            return Detections.empty()
        return Detections(boxes, scores, weak_boxes)

    @staticmethod
    def _clip(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
        boxes = boxes.reshape(-1, 4)
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        return boxes

    def _keep(
        self, boxes: np.ndarray, scores: np.ndarray, count: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop faces under ``min_face_px``, then all but the ``max_faces`` best (boxes
        are sorted by score); ``count``: into the counters (the reported faces)."""
        p = self.params
        small = ((boxes[:, 2] - boxes[:, 0]) < p.min_face_px) | (
            (boxes[:, 3] - boxes[:, 1]) < p.min_face_px
        )
        boxes, scores = boxes[~small], scores[~small]
        over = max(0, len(boxes) - p.max_faces)
        if count:
            self.counters.too_small += int(small.sum())
            self.counters.over_cap += over
        return boxes[: p.max_faces], scores[: p.max_faces]

    def close(self) -> None:
        """Nothing to release per camera: interpreters belong to the pool."""
