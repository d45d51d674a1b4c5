"""Face crops follow the model contract (margin, colour, size), also at frame borders."""

from __future__ import annotations

import numpy as np

from edge_daemon.classify.crop import crop_faces, square_boxes
from edge_daemon.labels import FER_LABELS
from edge_daemon.modelmeta import ModelContract

CONTRACT = ModelContract(labels=FER_LABELS, input_size=48, crop_margin=0.25)


def test_square_boxes_are_centred_and_enlarged_by_the_margin() -> None:
    box = square_boxes(np.array([[100, 100, 140, 120]], np.float32), 0.25)[0]
    x1, y1, x2, y2 = box
    assert x2 - x1 == y2 - y1 == 60  # longest side 40 x (1 + 2 x 0.25)
    assert (x1 + x2) / 2 == 120 and (y1 + y2) / 2 == 110


def test_crops_are_gray_at_the_contract_size_in_input_order() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    img[20:60, 20:60] = 255  # a white square
    boxes = np.array([[20, 20, 60, 60], [200, 100, 260, 160]], np.float32)
    crops = crop_faces(img, boxes, CONTRACT)
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8
    assert crops[0].mean() > crops[1].mean()  # order kept: the white one first
    assert crops[1].max() == 0


def test_face_cut_by_the_border_keeps_its_scale() -> None:
    img = np.full((100, 100, 3), 80, np.uint8)
    inside = crop_faces(img, np.array([[30, 30, 70, 70]], np.float32), CONTRACT)
    border = crop_faces(img, np.array([[-20, -20, 20, 20]], np.float32), CONTRACT)
    assert border.shape == inside.shape == (1, 48, 48)
    assert int(border.min()) == 80  # replicated, not black padding


def test_no_boxes_give_an_empty_batch() -> None:
    crops = crop_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4), np.float32), CONTRACT)
    assert crops.shape == (0, 48, 48)
