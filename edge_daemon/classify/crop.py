"""Cut face crops for the classifier exactly as the model's contract asks.

A square around the detector box (side = longest box side x (1 + 2 x crop_margin)),
replicated at the frame border so faces cut by the border keep their scale, converted
to the contract's colour and resized to its input size. Only the crop region is
converted, never the whole frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_daemon.modelmeta import ModelContract


def square_boxes(xyxy: np.ndarray, margin: float) -> np.ndarray:
    """xyxy float [N, 4] -> integer square boxes [N, 4] (may extend past the frame)."""
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2
    side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) * (1 + 2 * margin)
    side = np.maximum(side, 2)
    x1 = np.round(cx - side / 2)
    y1 = np.round(cy - side / 2)
    s = np.round(side)
    return np.stack([x1, y1, x1 + s, y1 + s], axis=1).astype(np.int64)


def crop_faces(image_bgr: np.ndarray, xyxy: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Crops [N, S, S] (gray) or [N, S, S, 3] uint8, in the order of ``xyxy``."""
    size = contract.input_size
    n = len(xyxy)
    shape = (n, size, size) if contract.channels == 1 else (n, size, size, 3)
    out = np.empty(shape, np.uint8)
    if n == 0:
        return out
    h, w = image_bgr.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(square_boxes(xyxy, contract.crop_margin)):
        cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if cx2 <= cx1 or cy2 <= cy1:
            out[i] = 0  # box entirely outside the frame (cannot come from the detector)
            continue
        region = image_bgr[cy1:cy2, cx1:cx2]
        if contract.channels == 1:
            region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
        elif contract.color == "rgb":
            region = cv2.cvtColor(region, cv2.COLOR_BGR2RGB)
        pad = (cy1 - y1, y2 - cy2, cx1 - x1, x2 - cx2)
        if any(pad):
            region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
        interp = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(region, (size, size), interpolation=interp)
    return out
