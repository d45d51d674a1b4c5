"""Foreign or damaged checkpoint and model files: one-line errors, exit 2, no traceback."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from trainer import export, quantize  # noqa: E402
from trainer.checkpoint import CheckpointError, read_checkpoint  # noqa: E402
from trainer.train import main as train_main  # noqa: E402


class _Payload:
    """Unpickling this would call os.system if the loader ran arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"missing": tmp_path / "nope.pt", "text": tmp_path / "text.pt"}
    out["text"].write_text("not a checkpoint\n")
    out["truncated"] = tmp_path / "cut.pt"
    torch.save({"arch": "edgefer", "model": {"w": torch.zeros(1000)}}, out["truncated"])
    out["truncated"].write_bytes(out["truncated"].read_bytes()[:300])
    out["other_dict"] = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, out["other_dict"])
    out["code"] = tmp_path / "code.pt"
    out["code"].write_bytes(pickle.dumps({"arch": _Payload(tmp_path / "ran")}))
    return out


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("case", ["missing", "text", "truncated", "other_dict", "code"])
def test_read_checkpoint_refuses_by_name(files: dict[str, Path], case: str) -> None:
    marker = files["missing"].parent / "ran"
    with pytest.raises(CheckpointError, match=r"does not exist|not a trainer checkpoint") as e:
        read_checkpoint(files[case])
    assert str(files[case]) in str(e.value)
    assert not marker.exists()  # weights_only: the pickle's code never ran


def test_other_dict_names_what_is_missing(files: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match=r"no arch, labels, model"):
        read_checkpoint(files["other_dict"])


@pytest.mark.parametrize("case", ["missing", "text", "truncated", "other_dict"])
def test_export_cli_exits_2(files: dict[str, Path], tmp_path: Path, case: str, capsys) -> None:
    assert export.main([str(files[case]), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(files[case]) in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("content", [None, b"junk bytes, not protobuf"])
def test_quantize_cli_exits_2(tmp_path: Path, content: bytes | None, capsys) -> None:
    model = tmp_path / "m.onnx"
    if content is not None:
        model.write_bytes(content)
    assert quantize.main([str(model), "-o", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(model) in err and "Traceback" not in err
    assert not (tmp_path / "q.onnx").exists()


def test_resume_from_a_damaged_last_pt_exits_2(tmp_path: Path, capsys) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("run_name: r\n")
    (run / "last.pt").write_text("half-written")
    assert train_main(["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "--resume:" in err and "not a trainer checkpoint" in err and "Traceback" not in err
