"""Several checkpoints exported as one graph that averages their logits (trainer.export),
and int8 quantization keeping every member's edge layers float (trainer.quantize)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edge_daemon.classify.model import EmotionModel  # noqa: E402
from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.data import FaceDataset  # noqa: E402
from trainer.export import (  # noqa: E402
    PARITY_TOL,
    ExportError,
    MeanLogits,
    export_checkpoint,
    load_checkpoint,
    main,
    onnx_logits,
)
from trainer.models import build_model, count_macs, count_params  # noqa: E402
from trainer.quantize import edge_nodes, float_glue_nodes, quantize  # noqa: E402

PRE = {"mean": 0.5, "std": 0.5, "crop_margin": 0.15}


def _checkpoint(path: Path, seed: int, **changes: object) -> Path:
    """A checkpoint as trainer.train writes it, with random weights."""
    torch.manual_seed(seed)
    model = build_model("edgefer", len(FER_LABELS)).eval()
    ck = {
        "arch": "edgefer",
        "model_kwargs": {},
        "labels": list(FER_LABELS),
        "preprocess": dict(PRE),
        "params": count_params(model),
        "macs": count_macs(model),
        "commit": f"c{seed}",
        "teachers": [],
        "model": model.state_dict(),
        "epoch": seed + 1,
        "val": {"accuracy": 0.5 + seed / 100},
    }
    ck.update(changes)
    torch.save(ck, path)
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("members")
    return [_checkpoint(d / f"m{i}.pt", i) for i in range(2)]


def _val(n: int = 64) -> FaceDataset:
    rng = np.random.default_rng(0)
    return FaceDataset(
        images=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        labels=rng.integers(0, len(FER_LABELS), n),
        name="val",
    )


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (n, 1, 48, 48)).astype(np.float32)


def test_mean_logits_is_the_members_average(members: list[Path]) -> None:
    nets = [load_checkpoint(p)[0] for p in members]
    x = torch.from_numpy(_x(3))
    with torch.no_grad():
        a, b = nets[0](x), nets[1](x)
        assert (a - b).abs().max() > 1e-3  # different members
        torch.testing.assert_close(MeanLogits(nets)(x), (a + b) / 2)
    with pytest.raises(ValueError, match="at least one"):
        MeanLogits([])


def test_ensemble_export_matches_torch_and_describes_its_members(
    members: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "ens.onnx"
    val = _val()
    report = export_checkpoint(members, out, val)
    assert report["parity_max_abs_diff"] < PARITY_TOL
    nets = [load_checkpoint(p)[0] for p in members]
    x = _x(5)
    with torch.no_grad():
        ref = ((nets[0](torch.from_numpy(x)) + nets[1](torch.from_numpy(x))) / 2).numpy()
    np.testing.assert_allclose(onnx_logits(out, x), ref, atol=1e-4)

    m = EmotionModel(out, providers="cpu")
    extra = m.contract.extra
    assert extra["arch"] == "edgefer+edgefer"
    one = torch.load(members[0], weights_only=False)
    assert int(extra["params"]) == 2 * one["params"]
    assert int(extra["macs"]) == 2 * one["macs"]
    listed = json.loads(extra["ensemble"])
    assert [e["train_commit"] for e in listed] == ["c0", "c1"]
    assert [e["val_accuracy_fp32"] for e in listed] == [0.5, 0.51]
    # The file's own accuracy on the export's val data, not a member's.
    assert float(extra["val_accuracy_fp32"]) == pytest.approx(report["val_accuracy_fp32"], 1e-4)
    assert float(extra["val_accuracy_fp32"]) == pytest.approx(
        (ref_val_logits(nets, val).argmax(1) == val.labels).mean(), abs=1e-4
    )
    assert m.labels == FER_LABELS


def test_mirrored_export_records_its_own_val_accuracy(members: list[Path], tmp_path: Path) -> None:
    """--tta-hflip exports another graph than the checkpoint validated: the metadata's
    val_accuracy_fp32 is the mirrored graph's, not the checkpoint's 0.5."""
    out = tmp_path / "tta.onnx"
    val = _val()
    report = export_checkpoint(members[0], out, val, tta_hflip=True)
    net = load_checkpoint(members[0])[0]
    x = torch.from_numpy(EmotionModel(out, providers="cpu").contract.normalize(val.images))
    with torch.no_grad():
        ref = ((net(x) + net(x.flip(-1))) / 2).numpy()
    expected = (ref.argmax(1) == val.labels).mean()
    extra = EmotionModel(out, providers="cpu").contract.extra
    assert extra["tta"] == "hflip"
    assert float(extra["val_accuracy_fp32"]) == pytest.approx(expected, abs=1e-4)
    assert report["val_accuracy_fp32"] == pytest.approx(expected, abs=1e-4)
    assert expected != pytest.approx(0.5, abs=1e-4)  # not the checkpoint's figure
    # Without the mirrored pass the checkpoint's own validation figure stays.
    plain = tmp_path / "plain.onnx"
    export_checkpoint(members[0], plain, val)
    assert EmotionModel(plain, providers="cpu").contract.extra["val_accuracy_fp32"] == "0.5000"


def ref_val_logits(nets: list, val: FaceDataset) -> np.ndarray:
    x = torch.from_numpy(((val.images / 255.0 - 0.5) / 0.5).astype(np.float32)[:, None])
    with torch.no_grad():
        return ((nets[0](x) + nets[1](x)) / 2).numpy()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"labels": list(reversed(FER_LABELS))}, "labels"),
        ({"preprocess": {**PRE, "mean": 0.4}}, "preprocess"),
    ],
)
def test_members_that_disagree_on_the_contract_are_refused(
    members: list[Path], tmp_path: Path, change: dict, named: str
) -> None:
    odd = _checkpoint(tmp_path / "odd.pt", 5, **change)
    with pytest.raises(ExportError, match=f"has {named} .* same labels and preprocessing"):
        export_checkpoint([members[0], odd], tmp_path / "x.onnx", None)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_takes_several_checkpoints(members: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    assert main([*map(str, members), "-o", str(out), "--no-data"]) == 0
    assert EmotionModel(out, providers="cpu").contract.extra["arch"] == "edgefer+edgefer"
    assert main([str(members[0]), str(tmp_path / "nope.pt"), "-o", str(out), "--no-data"]) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err


def test_int8_keeps_each_members_first_conv_and_classifier_float(
    members: list[Path], tmp_path: Path
) -> None:
    single, ens = tmp_path / "single.onnx", tmp_path / "ens.onnx"
    export_checkpoint(members[0], single, None)
    export_checkpoint(members, ens, None)
    assert len(edge_nodes(single)) == 2  # one first conv, one classifier
    edges = edge_nodes(ens)
    assert len(edges) == 4 and len({e.split("/")[1] for e in edges}) == 2  # per member

    calib = np.random.default_rng(2).integers(0, 256, (512, 48, 48), dtype=np.uint8)
    int8 = tmp_path / "ens_int8.onnx"
    quantize(ens, int8, calib, keep_edges_float=True)
    g = onnx.load(str(int8)).graph
    produced_by = {o: n for n in g.node for o in n.output}
    for name in edges:
        node = next(n for n in g.node if n.name == name)
        weight_src = produced_by.get(node.input[1])
        # A quantized node reads its weight through DequantizeLinear; a float one does not.
        assert weight_src is None or weight_src.op_type != "DequantizeLinear", name
    quantized = [n for n in g.node if n.op_type == "Conv" and n.name not in edges]
    assert quantized and all(
        produced_by[n.input[1]].op_type == "DequantizeLinear" for n in quantized
    )


def test_int8_mirrored_export_answers_a_mirrored_face_the_same(
    members: list[Path], tmp_path: Path
) -> None:
    """--tta-hflip then --keep-edges-float: the mirrored copy and the mean of the two
    passes stay float, so the int8 file is exactly mirror-invariant. Quantized, each half
    of the logits had its own scale and a mirrored face got other probabilities."""
    tta, int8 = tmp_path / "tta.onnx", tmp_path / "tta_int8.onnx"
    export_checkpoint(members[0], tta, None, tta_hflip=True)
    glue = float_glue_nodes(tta)
    assert {n.split("/")[-1].split("_")[0] for n in glue} >= {"Slice", "Add", "Mul"}
    calib = np.random.default_rng(2).integers(0, 256, (512, 48, 48), dtype=np.uint8)
    quantize(tta, int8, calib, keep_edges_float=True)
    m = EmotionModel(int8, providers="cpu")
    assert "and the ops around them" in m.contract.extra["quantization"]
    faces = np.random.default_rng(3).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    p = m.predict(faces)
    np.testing.assert_allclose(m.predict(faces[..., ::-1].copy()), p, atol=1e-6)
    # A graph without such glue quantizes as before.
    single = tmp_path / "single.onnx"
    export_checkpoint(members[0], single, None)
    assert float_glue_nodes(single) == []
