"""Knowledge distillation: the loss, ONNX teachers (label order by name, refusals), on tiny
graphs built with onnx.helper (no shared data). The real-run path is in
test_real_tiny_run.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from tests.trainer.test_onnx_contract_cli import PERMUTED, _spot_images, tiny_onnx  # noqa: E402
from trainer.config import DistillConfig, TrainConfigError, load_train_config  # noqa: E402
from trainer.distill import (  # noqa: E402
    Teachers,
    check_teachers_unchanged,
    distill_loss,
    file_sha256,
)


def _x01(classes: list[int]) -> torch.Tensor:
    """Spot images as the student's pre-normalisation batch: float [N, 1, 48, 48] in 0..1."""
    return torch.from_numpy(_spot_images(np.array(classes))).float().div(255).unsqueeze(1)


def test_distill_loss_is_zero_only_where_the_student_matches() -> None:
    t = 2.0
    teacher_logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    teacher = torch.softmax(teacher_logits / t, 1)
    assert float(distill_loss(teacher_logits, teacher, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(teacher_logits + 5.0, teacher, t)) == pytest.approx(0.0, abs=1e-6)
    other = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0]])
    kl = float(distill_loss(other, teacher, t))
    p_s = torch.log_softmax(other / t, 1)
    expected = float((teacher * (teacher.log() - p_s)).sum(1).mean()) * t * t
    assert kl == pytest.approx(expected, rel=1e-5) and kl > 0.1


def test_teachers_map_labels_by_name_and_average(tmp_path: Path) -> None:
    fer = tiny_onnx(tmp_path / "fer.onnx")
    permuted = tiny_onnx(tmp_path / "perm.onnx", PERMUTED)
    x = _x01(list(range(7)))
    one = Teachers(DistillConfig(teachers=(str(fer),), temperature=1.0), 48, 1)
    p = one.soft_targets(x).numpy()
    assert p.shape == (7, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert p.argmax(1).tolist() == list(range(7))  # spot k -> class k, in FER order
    # The permuted graph puts class k in another column; mapped by name it agrees.
    both = Teachers(DistillConfig(teachers=(str(fer), str(permuted)), temperature=1.0), 48, 1)
    np.testing.assert_allclose(both.soft_targets(x).numpy(), p, atol=1e-5)
    assert len(both) == 2
    assert both.info[0]["sha256"] == file_sha256(fer)
    # A higher temperature softens the same teacher's targets.
    hot = Teachers(DistillConfig(teachers=(str(fer),), temperature=4.0), 48, 1)
    assert hot.soft_targets(x).numpy().max() < p.max()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("big", "must read the student's 48x48 gray crops"),
        ("names", "not emotions the daemon publishes"),  # refused at load
        ("weight", "distill.weight"),
        ("temperature", "distill.temperature"),
    ],
)
def test_teacher_refusals_say_why(tmp_path: Path, case: str, message: str) -> None:
    path = tiny_onnx(tmp_path / "ok.onnx")
    cfg = DistillConfig(teachers=(str(path),))
    if case == "missing":
        cfg = DistillConfig(teachers=(str(tmp_path / "gone.onnx"),))
    elif case == "big":
        big = tiny_onnx(tmp_path / "big.onnx", size=64, metadata={"input_size": "64"})
        cfg = DistillConfig(teachers=(str(big),))
    elif case == "names":
        named = tiny_onnx(tmp_path / "named.onnx", ("anger", *FER_LABELS[1:]))
        cfg = DistillConfig(teachers=(str(named),))
    elif case == "weight":
        cfg = DistillConfig(teachers=(str(path),), weight=1.5)
    elif case == "temperature":
        cfg = DistillConfig(teachers=(str(path),), temperature=0.0)
    with pytest.raises(TrainConfigError, match=message):
        Teachers(cfg, 48, 1)


def test_hflip_teaches_with_the_mirrored_pass(tmp_path: Path) -> None:
    """distill.hflip: mean logits of the batch and its mirror, like --tta-hflip in the
    graph; a file that already mirrors inside its graph gets no second mirrored pass."""
    fer = tiny_onnx(tmp_path / "fer.onnx")
    x = _x01(list(range(7)))
    mirrored = x.flip(-1)
    plain = Teachers(DistillConfig(teachers=(str(fer),), temperature=1.0), 48, 1)
    flip = Teachers(DistillConfig(teachers=(str(fer),), temperature=1.0, hflip=True), 48, 1)
    # The tiny graph reads pixels (0, 0..6) only: a mirrored spot is invisible to it.
    assert not np.allclose(plain.soft_targets(x).numpy(), plain.soft_targets(mirrored).numpy())
    p = flip.soft_targets(x).numpy()
    np.testing.assert_allclose(p, flip.soft_targets(mirrored).numpy(), atol=1e-6)
    # Mean logits: the spot's logit 10 (as +1 after normalisation) and -10 (the blank
    # pixel, -1) average to 0 against the other classes' -10 -> softer, same argmax.
    assert p.argmax(1).tolist() == list(range(7))
    assert p.max() < plain.soft_targets(x).numpy().max()
    assert flip.info[0]["hflip"] == "true" and plain.info[0]["hflip"] == "false"
    baked = tiny_onnx(tmp_path / "baked.onnx", metadata={"tta": "hflip"})
    t = Teachers(DistillConfig(teachers=(str(baked),), temperature=1.0, hflip=True), 48, 1)
    assert t.info[0]["hflip"] == "false"
    np.testing.assert_allclose(t.soft_targets(x).numpy(), plain.soft_targets(x).numpy())


def test_resume_refuses_changed_teacher_files() -> None:
    a = [{"path": "t.onnx", "sha256": "aa"}]
    check_teachers_unchanged(a, [{"path": "moved/t.onnx", "sha256": "aa"}])
    with pytest.raises(TrainConfigError, match="teacher files changed"):
        check_teachers_unchanged(a, [{"path": "t.onnx", "sha256": "bb"}])
    with pytest.raises(TrainConfigError, match="teacher files changed"):
        check_teachers_unchanged([], a)
    # A checkpoint from before distill.hflip taught without the mirrored pass.
    check_teachers_unchanged(a, [{"path": "t.onnx", "sha256": "aa", "hflip": "false"}])
    with pytest.raises(TrainConfigError, match=r"distill\.hflip changed"):
        check_teachers_unchanged(a, [{"path": "t.onnx", "sha256": "aa", "hflip": "true"}])


def test_config_takes_a_list_of_teachers() -> None:
    cfg = load_train_config(None, ["distill.teachers=[a.onnx, b.onnx]", "distill.weight=0.7"])
    assert cfg.distill.teachers == ("a.onnx", "b.onnx") and cfg.distill.weight == 0.7
    with pytest.raises(TrainConfigError, match=r"distill.teachers: expected a list"):
        load_train_config(None, ["distill.teachers=a.onnx"])
    with pytest.raises(TrainConfigError, match=r"distill.teachers\[1\]: expected str"):
        load_train_config(None, ["distill.teachers=[a.onnx, 3]"])
