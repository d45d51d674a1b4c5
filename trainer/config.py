"""Training configuration: YAML file, then ``key=value`` overrides; unknown keys rejected.

The resolved configuration is saved with every run (``<run>/config.yaml``) so a run can
be repeated exactly and ``--resume`` continues with the same settings.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainer.augment import AugmentConfig


class TrainConfigError(ValueError):
    """A bad training config or override; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    format: str = "fer2013_npz"  # fer2013_npz | ferplus_npz | csv | folder
    path: str = ""  # empty: $EDGE_DATA_DIR/fer2013/fer2013_trainval.npz (or ferplus/...)
    train_split: str = "train"
    val_split: str = "val"
    dedupe: bool = True  # drop duplicate train images and train images found in val
    limit_train: int = 0  # 0 = all; small values for smoke tests
    limit_val: int = 0
    class_weight_power: float = 0.3  # loss weight ~ freq^-power: 0 none, 0.5 sqrt, 1 inverse
    # Targets (1 - b) * one-hot + b * FER+ votes of the same photo (0 = off); labels and
    # validation stay FER-2013. Needs FER-2013 images (npz, csv or folder).
    ferplus_blend: float = 0.0
    ferplus_path: str = ""  # empty: $EDGE_DATA_DIR/ferplus/ferplus_trainval.npz
    # Extra training crops (.npz of images [N, 48, 48] uint8 and FER-order labels, e.g.
    # the daemon-path crops of trainer.wild_crops), added to the training set only (never
    # to val), each repeated extra_repeat times per epoch; one-hot targets.
    extra: tuple[str, ...] = ()
    extra_repeat: int = 1
    # Rarer classes of an extra file repeated more: class c's crops extra_repeat x
    # (n_most / n_c) ** extra_balance times (at most EXTRA_BALANCE_CAP x more). In-the-wild
    # crops are 97% neutral and happy: unbalanced, the look of the daemon's crops itself
    # would come to mean "neutral or happy" and cost the rare classes' recall.
    extra_balance: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "edgefer"
    dropout: float = 0.3
    kwargs: dict[str, Any] = field(default_factory=dict)
    # A trainer checkpoint or an exported .onnx (trainer/onnx_init.py) whose weights start
    # this run (fine-tuning, trainer/warmstart.py); empty = random initialisation. Same
    # arch and kwargs required.
    init: str = ""


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"  # sgd (Nesterov) | adamw
    lr: float = 0.04
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 40
    warmup_epochs: float = 1.0
    schedule: str = "cosine"  # cosine | plateau
    # plateau schedule: lr *= plateau_factor after plateau_patience epochs (count) without
    # a val-accuracy gain, never below min_lr. Lower patience reacts faster to noise-level
    # dips (val moves +-0.3 points epoch to epoch late in training); higher wastes epochs.
    plateau_factor: float = 0.5
    plateau_patience: int = 4
    min_lr: float = 0.0
    # Stop when val accuracy has not improved for this many epochs (0 = run every epoch).
    # Saves hours once the plateau schedule has shrunk lr to nothing; the reference recipe
    # (seed002) keeps 0 so its 158 epochs are reproduced as published.
    early_stop_patience: int = 0
    label_smoothing: float = 0.1
    ema_decay: float = 0.999  # 0 disables the weight EMA
    channels_last: bool = True


@dataclass(frozen=True)
class PreprocessConfig:
    mean: float = 0.5
    std: float = 0.5
    crop_margin: float = 0.15  # written to the model metadata for the daemon's cropper


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from exported ONNX teachers (see :mod:`trainer.distill`)."""

    teachers: tuple[str, ...] = ()  # ONNX files with the metadata contract; empty = off
    # loss = (1 - weight) * CE(labels) + weight * T^2 * KL(teachers || student)
    weight: float = 0.5
    temperature: float = 2.0  # T: higher passes more of the teachers' "dark knowledge"
    # Each teacher also sees the mirrored batch and its logits are averaged: the
    # in-graph mirrored pass of `trainer.export --tta-hflip`, for a teacher file that
    # has none (e.g. the bundled int8 default). Twice the teacher's cost per batch.
    hflip: bool = False


@dataclass(frozen=True)
class TrainConfig:
    run_name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    threads: int = 2  # intra-op threads per process (CPU kernels, data preparation)
    # auto: CUDA when torch sees a GPU, else the CPU; cpu / cuda force one (cuda without
    # a GPU is an error, not a silent CPU run). The checkpoint and export contract is
    # the same on both: a model trained on a GPU exports and quantizes on a CPU.
    device: str = "auto"
    # Mixed precision on CUDA (ignored on the CPU): auto = bfloat16 where the GPU has it,
    # else float16 with loss scaling; off = float32.
    amp: str = "auto"
    # Deterministic kernels where the backend has them (slower on CUDA); seeds are
    # always set.
    deterministic: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TrainConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: a list of any length
            if not isinstance(value, list | tuple):
                raise TrainConfigError(f"{key}: expected a list, got {value!r}")
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise TrainConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(
            _coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TrainConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise TrainConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) as a string; it is what users type for a rate.
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    if tp in (int, str) and isinstance(value, tp) and not isinstance(value, bool):
        return value
    if tp is Any:
        return value
    raise TrainConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _build(cls: Any, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise TrainConfigError(
            f"unknown key(s) {', '.join(where + u for u in unknown)} "
            f"(allowed: {', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in values.items()}
    return cls(**kwargs)


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise TrainConfigError(f"override {dotted}: {p} is not a section")
    d[parts[-1]] = value


def to_dict(cfg: Any) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))


def load_train_config(path: str | Path | None, overrides: list[str]) -> TrainConfig:
    """YAML file (optional) then ``a.b=value`` overrides (values parsed as YAML)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TrainConfigError(f"{path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise TrainConfigError(f"{path}: top level must be a mapping")
    for ov in overrides:
        if "=" not in ov:
            raise TrainConfigError(f"override {ov!r} must look like key=value")
        key, val = ov.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(val))
    cfg = _build(TrainConfig, raw)
    _check_optim(cfg.optim)
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise TrainConfigError(f"device: {cfg.device!r} (allowed: auto, cpu, cuda)")
    if cfg.amp not in ("auto", "off", "bf16", "fp16"):
        raise TrainConfigError(f"amp: {cfg.amp!r} (allowed: auto, off, bf16, fp16)")
    if cfg.data.extra_repeat < 1:
        raise TrainConfigError(f"data.extra_repeat: {cfg.data.extra_repeat} must be at least 1")
    if not 0.0 <= cfg.data.extra_balance <= 1.0:
        raise TrainConfigError(f"data.extra_balance: {cfg.data.extra_balance} must be in 0..1")
    return cfg


def _check_optim(o: OptimConfig) -> None:
    """Values the optimiser would take without complaint but that make no sense."""
    if o.schedule not in ("cosine", "plateau"):
        # Anything else used to mean a constant lr, silently.
        raise TrainConfigError(f"optim.schedule: {o.schedule!r} (allowed: cosine, plateau)")
    if not 0.0 < o.plateau_factor < 1.0:
        raise TrainConfigError(
            f"optim.plateau_factor: {o.plateau_factor} must be between 0 and 1 (0.5 halves lr)"
        )
    for key in ("plateau_patience", "early_stop_patience", "epochs", "batch_size"):
        value = getattr(o, key)
        low = 1 if key in ("epochs", "batch_size") else 0
        if value < low:
            raise TrainConfigError(f"optim.{key}: {value} must be at least {low}")
    for key in ("lr", "min_lr", "warmup_epochs", "weight_decay"):
        if getattr(o, key) < 0:
            raise TrainConfigError(f"optim.{key}: {getattr(o, key)} must not be negative")


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


# What may change when a run is resumed: the schedule may be extended (``optim.epochs``),
# and the machine may differ (threads, where the same data sets live). Anything else
# would silently turn the run into a different recipe than its saved config.yaml says.
RESUME_MAY_CHANGE = frozenset(
    {
        "optim.epochs",
        "optim.early_stop_patience",
        "threads",
        "data.path",
        "data.ferplus_path",
        "device",
        "amp",
        "deterministic",
    }
)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_changes(saved: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between a run's saved config and the one resuming it.

    Raises :class:`TrainConfigError` naming every key outside :data:`RESUME_MAY_CHANGE`.
    """
    a, b = _flatten(to_dict(saved)), _flatten(to_dict(new))
    diff = {
        k: (a.get(k), b.get(k))
        for k in sorted(a.keys() | b.keys())
        if k not in ("run_name", "out_dir") and a.get(k) != b.get(k)
    }
    bad = [f"{k} ({x!r} -> {y!r})" for k, (x, y) in diff.items() if k not in RESUME_MAY_CHANGE]
    if bad:
        raise TrainConfigError(
            "--resume with a config that differs from the run's saved config.yaml in "
            + ", ".join(bad)
            + ". A resumed run may only change "
            + ", ".join(sorted(RESUME_MAY_CHANGE))
            + ": resume with `--resume RUN_DIR` and no other overrides, or start a new run_name"
        )
    return diff
