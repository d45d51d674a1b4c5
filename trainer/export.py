"""Export a trained checkpoint to ONNX with its preprocessing contract, and check it.

    python -m trainer.export runs/edgefer/best.pt -o runs/edgefer/emotion_fp32.onnx [--tta-hflip]
    python -m trainer.export runs/a/best.pt runs/b/best.pt -o ensemble_fp32.onnx

Several checkpoints make one graph that averages their logits (:class:`MeanLogits`).

The ONNX file carries :class:`edge_daemon.modelmeta.ModelContract` as ``metadata_props``
(labels, input size, colour, mean/std, output kind, crop margin, fitted temperature).
After export: ``onnx.checker`` and a numerical parity check against PyTorch on real
validation images (max abs difference of the logits < 1e-4).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_daemon.modelmeta import ModelContract
from trainer.checkpoint import CheckpointError, read_checkpoint
from trainer.data import DataError, FaceDataset
from trainer.metrics import fit_temperature
from trainer.models import build_model

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
PARITY_TOL = 1e-4


class ExportError(Exception):
    pass


class HFlipTTA(torch.nn.Module):
    """Mean logits of each face and its mirror image, computed inside the exported graph.

    The trade-off: twice the classifier work per face for a more accurate model that
    every consumer of the file gets, not only the daemon (``model.tta_hflip``). The
    output is invariant to mirroring the input, so mirroring again outside is pointless;
    the file says so with the metadata key ``tta`` = ``hflip``.
    """

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        z = self.net(torch.cat([x, x.flip(-1)]))
        # Slices, not a reshape: ONNX shape inference then keeps the class axis static.
        return (z[:n] + z[n:]) * 0.5


class MeanLogits(torch.nn.Module):
    """Mean logits of several networks on the same input: an ensemble in one file.

    The trade-off: the sum of the members' classifier time for the accuracy of their
    average (two 96-epoch ``edgefer2`` runs: about +1 point on FER-2013 val over either).
    Averaging logits rather than probabilities keeps the output a ``logits`` output, so
    the temperature fit and the daemon's contract stay as for one model; for members
    trained alike the two averages pick the same class almost always.
    """

    def __init__(self, nets: list[torch.nn.Module]) -> None:
        super().__init__()
        if not nets:
            raise ValueError("MeanLogits needs at least one network")
        self.nets = torch.nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.nets[0](x)
        for net in self.nets[1:]:
            z = z + net(x)
        return z * (1.0 / len(self.nets))


def _as_scored(ck: dict) -> dict:
    """A ``last.pt`` in ``best.pt``'s shape: the weights, epoch and val accuracy of its
    last epoch as validation scored it. ``last.pt`` keeps the raw weights (to resume
    training) with the EMA weights beside them, its ``epoch`` is the 0-based index to
    resume after, and its val figures are in ``history``; ``best.pt`` holds the scored
    (EMA) weights, the 1-based epoch and ``val``. Anything else is returned as it is."""
    if "optimizer" not in ck:  # only last.pt carries the optimizer state
        return ck
    out = dict(ck)
    if ck.get("ema") is not None:
        out["model"] = ck["ema"]
    out["epoch"] = int(ck["epoch"]) + 1
    history = ck.get("history") or []
    if history and "val_acc" in history[-1]:
        out["val"] = {"accuracy": history[-1]["val_acc"]}
    return out


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    try:
        ck = read_checkpoint(path)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    try:
        ck = _as_scored(ck)
        model = build_model(ck["arch"], len(ck["labels"]), **ck.get("model_kwargs", {}))
        model.load_state_dict(ck["model"])
    except (ValueError, TypeError, RuntimeError) as exc:  # unknown arch, bad kwargs, shapes
        raise ExportError(f"{path}: cannot rebuild its {ck['arch']!r} model: {exc}") from exc
    return model.eval(), ck


def load_checkpoints(paths: list[Path]) -> tuple[torch.nn.Module, list[dict]]:
    """One checkpoint as it is, several as a :class:`MeanLogits` ensemble. Members must
    agree on label order and preprocessing: the file can carry only one contract."""
    if not paths:
        raise ExportError("no checkpoint given")
    loaded = [load_checkpoint(p) for p in paths]
    first_path, (_, first) = paths[0], loaded[0]
    for path, (_, ck) in zip(paths[1:], loaded[1:], strict=True):
        for key in ("labels", "preprocess"):
            if ck[key] != first[key]:
                raise ExportError(
                    f"{path} has {key} {ck[key]} but {first_path} has {first[key]}: the "
                    "members of an ensemble must be trained with the same labels and "
                    "preprocessing"
                )
    if len(loaded) == 1:
        return loaded[0][0], [first]
    return MeanLogits([m for m, _ in loaded]).eval(), [ck for _, ck in loaded]


def contract_from_checkpoints(
    cks: list[dict], temperature: float, tta: str = "none", val_accuracy: float | None = None
) -> ModelContract:
    """The contract of one checkpoint, or of the :class:`MeanLogits` ensemble of several:
    arch ``a+b``, summed parameters and multiply-adds, the members in ``ensemble`` and
    the ensemble's own fp32 val accuracy (``val_accuracy``, measured by the export; for
    one checkpoint it replaces the checkpoint's own, e.g. under a mirrored pass)."""
    if len(cks) == 1:
        one = contract_from_checkpoint(cks[0], temperature, tta)
        if val_accuracy is None:
            return one
        return dataclasses.replace(
            one, extra={**one.extra, "val_accuracy_fp32": f"{val_accuracy:.4f}"}
        )
    base = contract_from_checkpoint(cks[0], temperature, tta)
    members = [
        {
            "arch": str(ck["arch"]),
            "epoch": ck.get("epoch"),
            "val_accuracy_fp32": ck.get("val", {}).get("accuracy"),
            "train_commit": str(ck.get("commit", "unknown")),
        }
        for ck in cks
    ]
    extra = dict(base.extra)
    extra.update(
        arch="+".join(m["arch"] for m in members),
        params=str(sum(int(ck.get("params") or 0) for ck in cks)),
        macs=str(sum(int(ck.get("macs") or 0) for ck in cks)),
        train_commit=",".join(dict.fromkeys(m["train_commit"] for m in members)),
        train_epoch=",".join(str(m["epoch"]) for m in members),
        val_accuracy_fp32=f"{val_accuracy if val_accuracy is not None else float('nan'):.4f}",
        ensemble=json.dumps(members),
    )
    people = sorted({p for ck in cks for p in ck.get("inthewild_people", [])})
    if people:  # an ensemble has seen what any member has seen
        extra["trained_on_inthewild"] = ",".join(people)
    return dataclasses.replace(base, extra=extra)


def contract_from_checkpoint(ck: dict, temperature: float, tta: str = "none") -> ModelContract:
    pre = ck["preprocess"]
    val = ck.get("val", {})
    return ModelContract(
        labels=tuple(ck["labels"]),
        input_size=48,
        color="gray",
        mean=float(pre["mean"]),
        std=float(pre["std"]),
        output="logits",
        crop_margin=float(pre["crop_margin"]),
        temperature=temperature,
        extra={
            "arch": str(ck["arch"]),
            "params": str(ck.get("params", "")),
            "macs": str(ck.get("macs", "")),
            "train_commit": str(ck.get("commit", "unknown")),
            "train_epoch": str(ck.get("epoch", "")),
            "val_accuracy_fp32": f"{val.get('accuracy', float('nan')):.4f}",
            "tta": tta,
            **(
                {"distilled_from": json.dumps([t["sha256"][:12] for t in ck["teachers"]])}
                if ck.get("teachers")
                else {}
            ),
            **({"init_from": ck["init"]["sha256"][:12]} if ck.get("init") else {}),
            **(
                {"trained_on_inthewild": ",".join(ck["inthewild_people"])}
                if ck.get("inthewild_people")
                else {}
            ),
        },
    )


def torch_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def export_onnx(model: torch.nn.Module, contract: ModelContract, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, contract.channels, contract.input_size, contract.input_size)
    torch.onnx.export(
        model,
        (dummy,),
        str(out),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    m = onnx.load(str(out))
    set_metadata(m, contract)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(out))


def set_metadata(m: onnx.ModelProto, contract: ModelContract) -> None:
    del m.metadata_props[:]
    for k, v in contract.to_metadata().items():
        m.metadata_props.add(key=k, value=v)
    m.doc_string = "FER emotion classifier (edge-daemon trainer)"


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    outs = [sess.run(None, {INPUT_NAME: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    return np.concatenate(outs)


def parity(model: torch.nn.Module, path: Path, x: np.ndarray) -> float:
    """Max abs difference between PyTorch and onnxruntime logits on the same input."""
    return float(np.abs(torch_logits(model, x) - onnx_logits(path, x)).max())


def export_checkpoint(
    ckpt: Path | list[Path], out: Path, val: FaceDataset | None, tta_hflip: bool = False
) -> dict:
    """Export + check; with validation data also fits the temperature and checks parity.

    Several checkpoints are exported as their :class:`MeanLogits` ensemble.
    ``tta_hflip`` wraps the network in :class:`HFlipTTA` before export; temperature,
    parity and (for an ensemble) the recorded val accuracy are then those of the wrapped
    model, i.e. of the file.
    """
    model, cks = load_checkpoints(ckpt if isinstance(ckpt, list) else [ckpt])
    return export_loaded(model, cks, out, val, tta_hflip)


def export_loaded(
    model: torch.nn.Module,
    cks: list[dict],
    out: Path,
    val: FaceDataset | None,
    tta_hflip: bool = False,
) -> dict:
    """:func:`export_checkpoint` for checkpoints already read by :func:`load_checkpoints`."""
    if tta_hflip:
        model = HFlipTTA(model).eval()
    temperature = 1.0
    val_accuracy = None
    report: dict = {}
    if val is not None and len(val):
        pre = cks[0]["preprocess"]
        labels = tuple(cks[0]["labels"])
        contract0 = ModelContract(labels=labels, mean=pre["mean"], std=pre["std"])
        x = contract0.normalize(val.images)
        logits = torch_logits(model, x)
        temperature = fit_temperature(logits, val.labels)
        report["temperature"] = temperature
        # An ensemble or a mirrored pass is not the graph any checkpoint validated:
        # record the exported graph's own accuracy.
        if len(cks) > 1 or tta_hflip:
            val_accuracy = float((logits.argmax(1) == val.labels).mean())
            report["val_accuracy_fp32"] = val_accuracy
    contract = contract_from_checkpoints(
        cks, temperature, "hflip" if tta_hflip else "none", val_accuracy
    )
    export_onnx(model, contract, out)
    if val is not None and len(val):
        n = min(len(val), 1000)
        diff = parity(model, out, contract.normalize(val.images[:n]))
        report["parity_max_abs_diff"] = diff
        report["parity_images"] = n
        if diff >= PARITY_TOL:
            raise ExportError(
                f"parity check failed: max |torch - onnx| = {diff:.2e} >= {PARITY_TOL}"
            )
    report["path"] = str(out)
    return report


def main(argv: list[str] | None = None) -> int:
    from trainer.config import TrainConfigError, load_train_config
    from trainer.train import load_data

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "checkpoint",
        type=Path,
        nargs="+",
        help="best.pt (or last.pt: its EMA weights); several: export their ensemble",
    )
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--no-data", action="store_true", help="skip temperature fit and parity")
    ap.add_argument(
        "--tta-hflip",
        action="store_true",
        help="bake mirrored-face test-time augmentation into the graph (2x work per face)",
    )
    args = ap.parse_args(argv)
    try:
        # read (and rebuilt) once, before the data: a bad file is refused without the wait
        model, cks = load_checkpoints(args.checkpoint)
        val = None
        if not args.no_data:
            cfg_path = args.checkpoint[0].parent / "config.yaml"
            cfg = load_train_config(cfg_path if cfg_path.exists() else None, [])
            _, val = load_data(cfg, log=False)
        report = export_loaded(model, cks, args.output, val, args.tta_hflip)
    except (ExportError, DataError, TrainConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for k, v in report.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
