"""Export a trained checkpoint to ONNX with its preprocessing contract, and check it.

    python -m trainer.export runs/edgefer/best.pt -o runs/edgefer/emotion_fp32.onnx [--tta-hflip]

The ONNX file carries :class:`edge_daemon.modelmeta.ModelContract` as ``metadata_props``
(labels, input size, colour, mean/std, output kind, crop margin, fitted temperature).
After export: ``onnx.checker`` and a numerical parity check against PyTorch on real
validation images (max abs difference of the logits < 1e-4).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_daemon.modelmeta import ModelContract
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


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    if not path.is_file():
        raise ExportError(f"{path}: no such checkpoint")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ck["arch"], len(ck["labels"]), **ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck


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
    ckpt: Path, out: Path, val: FaceDataset | None, tta_hflip: bool = False
) -> dict:
    """Export + check; with validation data also fits the temperature and checks parity.

    ``tta_hflip`` wraps the network in :class:`HFlipTTA` before export; temperature and
    parity are then those of the wrapped model, i.e. of the file.
    """
    model, ck = load_checkpoint(ckpt)
    if tta_hflip:
        model = HFlipTTA(model).eval()
    temperature = 1.0
    report: dict = {}
    if val is not None and len(val):
        pre = ck["preprocess"]
        contract0 = ModelContract(labels=tuple(ck["labels"]), mean=pre["mean"], std=pre["std"])
        x = contract0.normalize(val.images)
        logits = torch_logits(model, x)
        temperature = fit_temperature(logits, val.labels)
        report["temperature"] = temperature
    contract = contract_from_checkpoint(ck, temperature, "hflip" if tta_hflip else "none")
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
    from trainer.config import load_train_config
    from trainer.train import load_data

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--no-data", action="store_true", help="skip temperature fit and parity")
    ap.add_argument(
        "--tta-hflip",
        action="store_true",
        help="bake mirrored-face test-time augmentation into the graph (2x work per face)",
    )
    args = ap.parse_args(argv)
    try:
        val = None
        if not args.no_data:
            cfg_path = args.checkpoint.parent / "config.yaml"
            cfg = load_train_config(cfg_path if cfg_path.exists() else None, [])
            _, val = load_data(cfg, log=False)
        report = export_checkpoint(args.checkpoint, args.output, val, args.tta_hflip)
    except (ExportError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for k, v in report.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
