"""Loading and running the ONNX emotion model.

The model file is the single source of truth for pre-processing: a file without the
metadata contract (see :mod:`edge_daemon.modelmeta`) or whose graph disagrees with it is
refused at load with a message saying what is wrong.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_daemon.labels import FER_LABELS
from edge_daemon.modelmeta import ModelContract, ModelContractError

log = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "emotion.onnx"

#: ``model.tta_hflip_below`` (probability, 0..1): a face whose top calibrated probability
#: is below this is classified a second time, mirrored, and the two are averaged.
#: Measured (MODEL_CARD.md, "The mirrored pass"): the default's recipe, cross-fitted end
#: to end, 88.8% -> 89.4% with every face mirrored and the same 89.4% mirroring only the
#: 13% under 0.7; any floor from 0.6 to 0.9 gave the same on both halves of the people,
#: and on FER+ val. A confident face gains nothing from a second look, so the classifier
#: costs 1.1-1.3x a single pass (25% of FER+ val's harder faces are under 0.7), not 2x.
DEFAULT_TTA_HFLIP_BELOW = 0.7


class ModelLoadError(Exception):
    """The model cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    providers: tuple[str, ...]
    input_name: str
    contract: ModelContract
    sha256: str  # of the file: which model a box runs, for fleets comparing versions
    tta_hflip: bool  # the daemon's extra mirrored pass (not one inside the graph)
    requested: str = "auto"  # model.providers as configured
    fallback: str | None = None  # why the session runs on another provider than asked
    tta_hflip_below: float = 0.0  # mirrored pass for the uncertain faces only (0: none)

    def describe(self) -> dict[str, object]:
        """What the stats document says about the model (``<prefix>/stats`` ``model``)."""
        extra = self.contract.extra
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "arch": extra.get("arch"),
            "val_accuracy_fp32": extra.get("val_accuracy_fp32"),
            "quantization": extra.get("quantization"),
            "tta": extra.get("tta", "none"),
            "tta_hflip": self.tta_hflip,
            "tta_hflip_below": self.tta_hflip_below,
            "providers": list(self.providers),
            "providers_requested": self.requested,
            "provider_fallback": self.fallback,
        }


#: ``model.providers`` names -> onnxruntime execution providers, tried in this order.
#: Every list ends with the CPU, which is always there.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "auto": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "openvino": ("OpenVINOExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
#: The pip package that brings each provider (what the error message tells users).
_PACKAGE = {
    "cuda": "onnxruntime-gpu",
    "openvino": "onnxruntime-openvino",
    "tensorrt": "onnxruntime-gpu with TensorRT",
}


def choose_providers(requested: str, available: list[str] | None = None) -> list[str]:
    """``auto``: CUDA when onnxruntime offers it, then CPU. Any other name: that
    provider (an error when this onnxruntime lacks it), then the CPU."""
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if requested not in PROVIDERS:
        raise ModelLoadError(f"model.providers: {requested!r} (allowed: {', '.join(PROVIDERS)})")
    wanted = PROVIDERS[requested]
    if requested not in ("auto", "cpu") and wanted[0] not in available:
        raise ModelLoadError(
            f"model.providers is {requested!r} but this onnxruntime has no {wanted[0]} "
            f"(available: {', '.join(available)}); install {_PACKAGE[requested]} "
            "in place of onnxruntime, or use 'auto'"
        )
    return [p for p in wanted if p in available]


def _cpu_session(ort: Any, path: Path, so: Any, first: Exception | None) -> Any:
    """A CPU session; if the full graph optimisation fails, once more with the basic one.

    Some onnxruntime releases break a valid graph in their extended optimisations
    (1.24.1, the newest onnxruntime-openvino, makes two nodes of the same name out of
    the FER-2013 ensemble bundled as ``accurate`` until 2026-12-08; 1.32 does not): the
    model then runs, with a warning, rather than not at all, but without the fused int8
    kernels (that ensemble measured 14 ms per face instead of 2.4 ms), so upgrading
    onnxruntime is the fix.
    """
    if first is None:
        try:
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises unrelated types; kept
            first = exc
    basic = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if so.graph_optimization_level != basic:
        so.graph_optimization_level = basic
        try:
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - as above; the first error is the one reported
            pass
        else:
            log.warning(
                "%s: onnxruntime %s could not optimise the graph fully (%s); running it "
                "with basic optimisations, several times slower: upgrade onnxruntime",
                path.name,
                ort.__version__,
                str(first).splitlines()[0][:200],
            )
            return session
    raise ModelLoadError(f"{path}: not a loadable ONNX model ({first})") from first


def _open_session(ort: Any, path: Path, so: Any, chosen: list[str]) -> tuple[Any, str | None]:
    """The session on ``chosen`` providers, else on the CPU alone; and why, if so.

    An accelerator provider can be installed yet fail to start (no driver, a library
    missing, an unsupported GPU): that is a warning and a CPU session, never a crash.
    A file onnxruntime cannot load at all is a :class:`ModelLoadError`.
    """
    try:
        session = ort.InferenceSession(str(path), so, providers=chosen)
    except Exception as exc:  # noqa: BLE001 - unrelated types; logged or raised below
        if chosen == ["CPUExecutionProvider"]:
            return _cpu_session(ort, path, so, exc), None
        why = f"{chosen[0]} failed to start ({str(exc).splitlines()[0][:200]})"
        log.warning("%s; running the emotion model on the CPU", why)
        return _cpu_session(ort, path, so, None), why
    got = session.get_providers()
    if chosen[0] != "CPUExecutionProvider" and chosen[0] not in got:
        # onnxruntime itself fell back (it does for some provider errors): say so.
        why = f"{chosen[0]} did not start (onnxruntime fell back to {', '.join(got)})"
        log.warning("%s", why)
        return session, why
    return session, None


class EmotionModel:
    """An onnxruntime session plus the contract it was exported with.

    ``predict(crops)`` takes uint8 face crops already cut and resized to the contract
    (see :mod:`edge_daemon.classify.crop`) and returns calibrated probabilities.

    The mirrored pass: ``tta_hflip`` classifies every face and its mirror image and
    averages the probabilities (twice the work); ``tta_hflip_below`` does so only for
    the faces whose top probability is below it (see :data:`DEFAULT_TTA_HFLIP_BELOW`).
    Neither runs for a model that mirrors inside its graph (metadata ``tta=hflip``).
    """

    def __init__(
        self,
        path: Path | None = None,
        providers: str = "auto",
        threads: int = 1,
        tta_hflip: bool = False,
        tta_hflip_below: float = 0.0,
    ) -> None:
        import onnxruntime as ort

        if not 0.0 <= tta_hflip_below <= 1.0:
            raise ValueError(f"tta_hflip_below must be in [0, 1], got {tta_hflip_below}")
        self.tta_hflip = tta_hflip
        self.tta_hflip_below = tta_hflip_below
        path = Path(path) if path is not None else BUNDLED_MODEL
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist (model.path)")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        chosen = choose_providers(providers)
        self.session, fallback = _open_session(ort, path, so, chosen)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.contract = ModelContract.from_metadata(meta)
        except ModelContractError as exc:
            raise ModelLoadError(f"{path}: {exc}") from exc
        unknown = [lab for lab in self.contract.labels if lab not in FER_LABELS]
        if unknown:
            # Labels are matched by name (any order, any subset of the seven), but an
            # event can only name one of the seven emotions its schema publishes.
            raise ModelLoadError(
                f"{path}: labels {unknown} are not emotions the daemon publishes "
                f"({', '.join(FER_LABELS)}); export the model with those class names"
            )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelLoadError(f"{path}: expected one input and one output")
        shape = inputs[0].shape
        c, s = self.contract.channels, self.contract.input_size
        if len(shape) != 4 or list(shape[1:]) != [c, s, s]:
            raise ModelLoadError(
                f"{path}: input shape {shape} does not match metadata (expected [N, {c}, {s}, {s}])"
            )
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or out_shape[1] != len(self.contract.labels):
            raise ModelLoadError(
                f"{path}: output shape {out_shape} does not match the {len(self.contract.labels)} "
                f"labels in its metadata"
            )
        self.input_name = inputs[0].name
        # A graph that averages each face with its mirror image is mirror-invariant: an
        # outer mirrored pass, for every face or the unsure ones, would only add cost.
        in_graph = self.contract.extra.get("tta") == "hflip"
        if tta_hflip and in_graph:
            log.info("%s already mirrors faces inside the model; model.tta_hflip ignored", path)
            self.tta_hflip = False
        if self.tta_hflip or in_graph:
            self.tta_hflip_below = 0.0  # every face is mirrored already
        self.info = ModelInfo(
            path,
            tuple(self.session.get_providers()),
            self.input_name,
            self.contract,
            hashlib.sha256(path.read_bytes()).hexdigest(),
            self.tta_hflip,
            providers,
            fallback,
            self.tta_hflip_below,
        )
        self.warmup_ms = self._warmup()
        log.info(
            "emotion model %s: labels=%s providers=%s warm-up %.1f ms",
            path.name,
            ",".join(self.contract.labels),
            ",".join(self.info.providers),
            self.warmup_ms,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.contract.labels

    def _warmup(self) -> float:
        s = self.contract.input_size
        shape = (4, s, s) if self.contract.channels == 1 else (4, s, s, 3)
        t = time.perf_counter()
        for _ in range(3):
            self.predict(np.full(shape, 128, np.uint8))
        return (time.perf_counter() - t) * 1000 / 3

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops [N, S, S] (gray) -> float32 probabilities [N, len(labels)]."""
        return self.predict_counted(crops)[0]

    def predict_counted(self, crops: np.ndarray) -> tuple[np.ndarray, int]:
        """:meth:`predict`, plus how many of the faces were also classified mirrored."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32), 0
        x = self.contract.normalize(crops)
        n = len(crops)
        if self.tta_hflip:
            # One batch holding the faces and their mirror images; average the probabilities.
            p = self._probs(np.concatenate([x, x[..., ::-1]]))
            mean: np.ndarray = (p[:n] + p[n:]) * np.float32(0.5)
            return mean, n
        p = self._probs(x)
        if self.tta_hflip_below <= 0.0:
            return p, 0
        unsure = np.flatnonzero(p.max(1) < self.tta_hflip_below)
        if unsure.size:
            q = self._probs(np.ascontiguousarray(x[unsure][..., ::-1]))
            p[unsure] = (p[unsure] + q) * np.float32(0.5)
        return p, int(unsure.size)

    def _probs(self, x: np.ndarray) -> np.ndarray:
        probs: np.ndarray = self.contract.to_probs(self.session.run(None, {self.input_name: x})[0])
        return probs
