"""model.init: a run starts from a trained checkpoint's weights (trainer.warmstart)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.config import TrainConfigError, load_train_config  # noqa: E402
from trainer.distill import file_sha256  # noqa: E402
from trainer.models import build_model  # noqa: E402
from trainer.warmstart import apply_init, read_init  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "trainer" / "configs"


def _ck(path: Path, arch: str = "edgefer", **changes: object) -> Path:
    torch.manual_seed(3)
    model = build_model(arch, len(FER_LABELS))
    ck = {
        "arch": arch,
        "model_kwargs": {"dropout": 0.3},
        "labels": list(FER_LABELS),
        "preprocess": {"mean": 0.5, "std": 0.5, "crop_margin": 0.15},
        "model": model.state_dict(),
        "epoch": 7,
        "val": {"accuracy": 0.6},
    }
    ck.update(changes)
    torch.save(ck, path)
    return path


def _cfg(*overrides: str, config: str = "edgefer.yaml"):
    return load_train_config(CONFIGS / config, list(overrides))


def test_unset_means_random_init() -> None:
    assert read_init(_cfg()) is None


def test_weights_are_loaded_and_the_file_is_recorded(tmp_path: Path) -> None:
    path = _ck(tmp_path / "a.pt")
    init = read_init(_cfg(f"model.init={path}", "model.dropout=0.1"))  # dropout may differ
    assert init is not None
    assert init.record == {
        "path": str(path),
        "sha256": file_sha256(path),
        "arch": "edgefer",
        "epoch": 7,
        "val_accuracy": 0.6,
        "inthewild_people": [],
    }
    torch.manual_seed(99)
    model = build_model("edgefer", len(FER_LABELS))
    saved = torch.load(path, weights_only=False)["model"]
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in saved.items())
    apply_init(model, init)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_the_in_the_wild_people_an_init_has_seen_are_carried(tmp_path: Path) -> None:
    # A model fine-tuned from one fitted on in-the-wild photos has seen them too: the
    # record carries them into the new checkpoint (and from there into the export).
    path = _ck(tmp_path / "a.pt", inthewild_people=["train"])
    init = read_init(_cfg(f"model.init={path}"))
    assert init is not None and init.record["inthewild_people"] == ["train"]


@pytest.mark.parametrize(
    ("make", "overrides", "message"),
    [
        (None, [], "does not exist"),
        ("garbage", [], "is not a trainer checkpoint"),
        ({}, ["model.arch=edgefer2"], "set model.arch and model.kwargs"),
        ({}, ["model.kwargs={head_dim: 64}"], "set model.arch and model.kwargs"),
        ({"labels": list(reversed(FER_LABELS))}, [], "outputs"),
        ({"preprocess": {"mean": 0.4, "std": 0.5}}, [], "set preprocess.mean"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused_by_name(
    tmp_path: Path, make: object, overrides: list[str], message: str
) -> None:
    path = tmp_path / "x.pt"
    if make == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif isinstance(make, dict):
        _ck(path, **make)
    with pytest.raises(TrainConfigError, match=message) as exc:
        read_init(_cfg(f"model.init={path}", *overrides))
    assert str(exc.value).startswith("model.init: ")


def test_state_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    init = read_init(_cfg(f"model.init={_ck(tmp_path / 'a.pt')}"))
    assert init is not None
    other = build_model("edgefer", len(FER_LABELS), head_dim=64)
    with pytest.raises(TrainConfigError, match="does not fit this model"):
        apply_init(other, init)
