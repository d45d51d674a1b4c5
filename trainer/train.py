"""Train an emotion classifier on the CPU, or on a GPU when there is one.

    python -m trainer.train --config trainer/configs/edgefer.yaml [--device auto] [key=value ...]
    python -m trainer.train --resume runs/NAME [optim.epochs=N]   # continue a run
    torchrun --nproc-per-node N -m trainer.train --config ...      # several GPUs/machines

Device, mixed precision and DistributedDataParallel: :mod:`trainer.device`.

Writes to ``<out_dir>/<run_name>/``: the resolved ``config.yaml``, ``last.pt`` (every
epoch, for ``--resume``), ``best.pt`` (best validation accuracy, EMA weights when
enabled), ``metrics.jsonl`` (one line per epoch), ``curves.png`` and ``confusion.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_daemon.labels import FER_LABELS
from trainer.augment import augment
from trainer.checkpoint import CheckpointError, read_checkpoint
from trainer.config import (
    TrainConfig,
    TrainConfigError,
    load_train_config,
    resume_changes,
    save_config,
)
from trainer.data import (
    DataError,
    FaceDataset,
    balanced_repeats,
    blend_ferplus,
    concat,
    crops_people,
    default_data_dir,
    load_crops_npz,
    load_split,
    remove_duplicates,
)
from trainer.device import Placement, all_sum, setup, teardown, unwrap, wrap
from trainer.distill import Teachers, check_teachers_unchanged, distill_loss
from trainer.metrics import plot_confusion, summarize
from trainer.models import build_model, count_macs, count_params
from trainer.onnx_init import STAT_IMAGES
from trainer.warmstart import apply_init, read_init

_DEFAULT_PATHS = {
    "fer2013_npz": "fer2013/fer2013_trainval.npz",
    "ferplus_npz": "ferplus/ferplus_trainval.npz",
}


def _data_path(fmt: str, explicit: str) -> Path:
    """``explicit`` when given, else the shared data set of format ``fmt``."""
    if explicit:
        return Path(explicit)
    if fmt not in _DEFAULT_PATHS:
        raise TrainConfigError(f"data.path is required for data.format={fmt}")
    return default_data_dir() / _DEFAULT_PATHS[fmt]


def resolve_data_path(cfg: TrainConfig) -> Path:
    return _data_path(cfg.data.format, cfg.data.path)


def load_data(cfg: TrainConfig, log: bool = True) -> tuple[FaceDataset, FaceDataset]:
    path = resolve_data_path(cfg)
    train = load_split(cfg.data.format, path, cfg.data.train_split)
    val = load_split(cfg.data.format, path, cfg.data.val_split)
    if cfg.data.dedupe:
        train, dup, leak = remove_duplicates(train, (val,))
        if log:
            print(f"dedupe: dropped {dup} duplicate and {leak} val-overlapping train images")
    rng = np.random.default_rng(cfg.seed)
    if cfg.data.limit_train:
        train = train.subset(rng.permutation(len(train))[: cfg.data.limit_train])
    if cfg.data.limit_val:
        val = val.subset(rng.permutation(len(val))[: cfg.data.limit_val])
    if cfg.data.ferplus_blend > 0:
        if cfg.data.format == "ferplus_npz":
            raise TrainConfigError(
                "data.ferplus_blend blends FER+ votes into FER-2013 labels; with "
                "data.format=ferplus_npz the targets already are the votes: set it to 0"
            )
        fp_path = _data_path("ferplus_npz", cfg.data.ferplus_path)
        ferplus = load_split("ferplus_npz", fp_path, cfg.data.train_split)
        train, matched = blend_ferplus(train, ferplus, cfg.data.ferplus_blend)
        if log:
            print(
                f"FER+ blend {cfg.data.ferplus_blend:g}: votes for {matched} of {len(train)} "
                f"train images ({len(train) - matched} keep one-hot targets)"
            )
    for extra_path in cfg.data.extra:
        extra = load_crops_npz(Path(extra_path))
        reps = balanced_repeats(extra.labels, cfg.data.extra_repeat, cfg.data.extra_balance)
        train = concat(train, extra, reps)
        if log:
            per_class = np.bincount(extra.labels, weights=reps, minlength=len(FER_LABELS))
            print(
                f"extra: {len(extra)} crops from {extra_path} (per class "
                f"{extra.class_counts().tolist()}), {int(reps.sum())} with repeats "
                f"({per_class.astype(int).tolist()})"
            )
    return train, val


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 48, 48] -> float [N, 1, 48, 48] in 0..1 (normalisation happens later)."""
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1)


class ModelEMA:
    """Exponential moving average of weights (and BN buffers), used for evaluation."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Warm-up the decay so early EMA weights are not dominated by the random init.
        d = min(self.decay, (1 + step) / (10 + step))
        for e, m in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


EVAL_CHUNK = 64  # images per validation forward pass


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray,
    cfg: TrainConfig,
    device: torch.device | None = None,
    amp: torch.dtype | None = None,
) -> np.ndarray:
    model.eval()
    out = []
    # Small chunks: on 2 CPU threads a 512-image batch runs ~1.8x slower per image than 64
    # (activations fall out of cache), which cost ~3 s of every epoch's validation.
    for i in range(0, len(images), EVAL_CHUNK):
        chunk = images[i : i + EVAL_CHUNK]
        x = (to_input(chunk) - cfg.preprocess.mean) / cfg.preprocess.std
        if device is not None:
            x = x.to(device, non_blocking=True)
        if cfg.optim.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(FER_LABELS)), np.float32)


def lr_at(cfg: TrainConfig, epoch_f: float) -> float:
    o = cfg.optim
    if epoch_f < o.warmup_epochs:
        return o.lr * (0.1 + 0.9 * epoch_f / o.warmup_epochs)
    if o.schedule == "cosine":
        t = (epoch_f - o.warmup_epochs) / max(1e-9, o.epochs - o.warmup_epochs)
        return o.lr * (0.005 + 0.995 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
    return o.lr  # plateau: adjusted by the scheduler below


def epochs_without_gain(history: list[dict]) -> int:
    """Epochs run since the first epoch with the best val accuracy (0 if none run yet)."""
    if not history:
        return 0
    best = max(range(len(history)), key=lambda i: history[i]["val_acc"])  # first maximum
    return len(history) - 1 - best


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=True)
    if cfg.optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    raise TrainConfigError(f"optim.name: {cfg.optim.name!r} (allowed: sgd, adamw)")


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.plot(ep, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(ep, [h["train_acc"] for h in history], label="train acc (augmented)")
    b.plot(ep, [h["val_acc"] for h in history], label="val acc")
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _save_atomic(obj: dict, path: Path) -> None:
    """Write then rename: a run killed mid-save (session end, OOM) keeps the old file."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict on the CPU: checkpoints load anywhere, whatever trained them."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False) -> Path:
    """Run (or resume) a training; returns the run directory."""
    place = setup(cfg)
    try:
        return _train(cfg, place, resume, quiet or not place.main)
    finally:
        teardown(place)


def _train(cfg: TrainConfig, place: Placement, resume: bool, quiet: bool) -> Path:
    from tqdm import tqdm

    dev = place.device
    run_dir = cfg.run_dir
    if place.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and not last_path.exists():
        raise TrainConfigError(f"--resume: no checkpoint at {last_path}")
    if not resume and last_path.exists():
        raise TrainConfigError(
            f"{run_dir} already holds a run: pass --resume to continue it "
            "or choose another run_name"
        )
    if resume and (run_dir / "config.yaml").exists():
        saved = load_train_config(run_dir / "config.yaml", [])
        for key, (was, now) in resume_changes(saved, cfg).items():
            if not quiet:
                print(f"resume: {key} {was!r} -> {now!r}")
    resume_ck = None
    if resume:  # after the recipe check, before the data: a damaged file is said at once
        try:
            resume_ck = read_checkpoint(last_path)
        except CheckpointError as exc:
            raise TrainConfigError(f"--resume: {exc}") from exc
    # A bad model.init is refused before anything is written or read; on resume the
    # weights come from last.pt, so the file is not needed any more.
    init = None if resume else read_init(cfg)
    if place.main:
        save_config(cfg, run_dir / "config.yaml")

    train_ds, val_ds = load_data(cfg, log=not quiet)
    # Which in-the-wild people the model has seen: export writes it into the file, and
    # trainer.evaluate_e2e then scores the model on the other people only.
    wild_people = {p for p in map(crops_people, map(Path, cfg.data.extra)) if p}
    labels = FER_LABELS
    model = build_model(cfg.model.arch, len(labels), dropout=cfg.model.dropout, **cfg.model.kwargs)
    params, macs = count_params(model), count_macs(model)
    if init is not None:
        # Exported inits measure their batch-norm statistics on (a prefix of) the
        # normalised training images; a shuffled prefix, so every class is in it.
        seed_idx = np.random.default_rng(cfg.seed).permutation(len(train_ds))[:STAT_IMAGES]
        seed_x = (
            to_input(train_ds.images[np.sort(seed_idx)]) - cfg.preprocess.mean
        ) / cfg.preprocess.std
        apply_init(model, init, seed_x)
        if not quiet:
            r = init.record
            print(f"init: {r['path']} ({r['arch']}, epoch {r['epoch']}, sha256 {r['sha256'][:12]})")
            if "import" in r:
                print(
                    f"init: imported from the exported file; against it on {len(seed_x)} "
                    f"training images: largest logit difference "
                    f"{r['import']['max_logit_diff']:.3g}, top class differs on "
                    f"{r['import']['top1_disagreement']:.2%}"
                )
    model = model.to(dev)
    if cfg.optim.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
    # DDP (and SyncBatchNorm) replace modules: the optimiser is built on what trains.
    net = wrap(model, place)
    model = unwrap(net)
    opt = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=place.amp_dtype == torch.float16)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="max",
            factor=cfg.optim.plateau_factor,
            patience=cfg.optim.plateau_patience,
            min_lr=cfg.optim.min_lr,
        )
        if cfg.optim.schedule == "plateau"
        else None
    )

    teachers = (
        Teachers(cfg.distill, input_size=train_ds.images.shape[1], threads=cfg.threads)
        if cfg.distill.teachers
        else None
    )
    teacher_info = [] if teachers is None else teachers.info

    counts = np.maximum(train_ds.class_counts(), 1).astype(np.float64)
    w = counts ** (-cfg.data.class_weight_power)
    class_w = torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32).to(dev)

    start_epoch, step, best_acc, history, wall = 0, 0, -1.0, [], 0.0
    init_record = None if init is None else init.record
    if resume_ck is not None:
        ck = resume_ck
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ema is not None and ck.get("ema") is not None:
            ema.module.load_state_dict(ck["ema"])
        if plateau is not None and ck.get("plateau") is not None:
            plateau.load_state_dict(ck["plateau"])
        start_epoch, step, best_acc = ck["epoch"] + 1, ck["step"], ck["best_acc"]
        history, wall = ck["history"], ck.get("wall_s", 0.0)
        torch.set_rng_state(ck["rng"])
        if ck.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ck["scaler"])
        check_teachers_unchanged(ck.get("teachers", []), teacher_info)
        init_record = ck.get("init")
        # An interrupt between the metrics line and last.pt leaves a line for an epoch
        # that will now run again: the checkpoint's history is the truth.
        if place.main:
            _write_jsonl(run_dir / "metrics.jsonl", history)
        if not quiet:
            print(f"resumed {run_dir} at epoch {start_epoch}")

    if not quiet:
        print(
            f"{cfg.model.arch}: {params:,} params, {macs / 1e6:.1f} M MACs; "
            f"train {len(train_ds)} val {len(val_ds)} images; "
            f"class weights {np.round(w / w.min(), 2)}"
        )
        p = place.describe()
        print(
            f"device {p['device']}, precision {p['amp'] or 'float32'}"
            + (f", {p['world_size']} processes ({p['backend']})" if place.distributed else "")
        )
        for t in teacher_info:
            print(f"teacher: {t['path']} ({t['arch']}, tta {t['tta']}, sha256 {t['sha256'][:12]})")
    x_all = to_input(train_ds.images)
    y_all = torch.from_numpy(train_ds.labels)
    soft_all = None if train_ds.soft is None else torch.from_numpy(train_ds.soft)
    bs = cfg.optim.batch_size
    steps_per_epoch = max(1, len(train_ds) // bs)
    commit = git_commit()

    for epoch in range(start_epoch, cfg.optim.epochs):
        stale = epochs_without_gain(history)
        if cfg.optim.early_stop_patience and stale >= cfg.optim.early_stop_patience:
            # Checked before the epoch, so a resumed run that had already stopped stays so.
            if not quiet:
                print(
                    f"early stop before epoch {epoch + 1}: val accuracy has not improved for "
                    f"{stale} epochs (optim.early_stop_patience={cfg.optim.early_stop_patience}); "
                    f"best {best_acc:.4f} is in {best_path}"
                )
            break
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(train_ds))  # the same on every rank (same seed)
        tot_loss = tot_correct = seen = 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
            disable=quiet,
            file=sys.stdout,
            # A log file (nohup) gets a progress update a minute, a terminal every 5 s.
            mininterval=5 if sys.stdout.isatty() else 60,
        )
        for i in bar:
            # This rank's share of the global batch (all of it in one process).
            idx = perm[i * bs : (i + 1) * bs][place.rank :: place.world]
            lr = lr_at(cfg, epoch + i / steps_per_epoch)
            if plateau is None:
                for g in opt.param_groups:
                    g["lr"] = lr
            # Augmentation (and the ONNX teachers) run on the CPU; the batch then moves.
            x01 = augment(x_all[idx], cfg.augment)
            soft_t = None if teachers is None else teachers.soft_targets(x01).to(dev)
            x = ((x01 - cfg.preprocess.mean) / cfg.preprocess.std).to(dev, non_blocking=True)
            if cfg.optim.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_all[idx].to(dev, non_blocking=True)
            with torch.autocast(
                dev.type,
                dtype=place.amp_dtype or torch.float32,
                enabled=place.amp_dtype is not None,
            ):
                logits = net(x)
            logits = logits.float()  # the losses in float32 (log-softmax of fp16 loses bits)
            if soft_all is not None:
                target = soft_all[idx].to(dev) * (1 - cfg.optim.label_smoothing) + (
                    cfg.optim.label_smoothing / len(labels)
                )
                loss = -(target * F.log_softmax(logits, 1) * class_w).sum(1).mean()
            else:
                loss = F.cross_entropy(
                    logits, y, weight=class_w, label_smoothing=cfg.optim.label_smoothing
                )
            if soft_t is not None:
                kd = distill_loss(logits, soft_t, cfg.distill.temperature)
                loss = (1 - cfg.distill.weight) * loss + cfg.distill.weight * kd
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                # Every later step would be garbage too: stop now, not hours later.
                raise TrainConfigError(
                    f"training diverged: the loss is {loss_value} at epoch {epoch + 1}, "
                    f"step {i + 1} (lr {opt.param_groups[0]['lr']:.3g}); last.pt still "
                    "holds the previous epoch. Start a new run_name with a lower optim.lr "
                    "or a longer optim.warmup_epochs"
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            if ema is not None:
                ema.update(model, step)
            tot_loss += loss_value * len(idx)
            tot_correct += float((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(
                loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}", refresh=False
            )
        bar.close()
        tot_loss, tot_correct, seen = all_sum([tot_loss, tot_correct, seen], place)

        # Every rank evaluates (the same weights give the same result), so all of them
        # take the same early-stop and best-model decisions; only rank 0 writes.
        eval_model = ema.module if ema is not None else model
        val_logits = predict_logits(eval_model, val_ds.images, cfg, dev, place.amp_dtype)
        val_t = torch.from_numpy(val_logits)
        val_loss = float(F.cross_entropy(val_t, torch.from_numpy(val_ds.labels)))
        probs = torch.softmax(val_t, 1).numpy()
        summ = summarize(val_ds.labels, probs, labels)
        if plateau is not None:
            plateau.step(summ["accuracy"])
        wall += time.perf_counter() - t0
        rec = {
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": tot_loss / max(seen, 1),
            "train_acc": tot_correct / max(seen, 1),
            "val_loss": val_loss,
            "val_acc": summ["accuracy"],
            "val_macro_f1": summ["macro_f1"],
            "epoch_s": time.perf_counter() - t0,
            "wall_s": wall,
            "images_per_s": seen / max(1e-9, time.perf_counter() - t0),
        }
        history.append(rec)
        if not place.main:
            best_acc = max(best_acc, summ["accuracy"])
            continue
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        state = {
            "arch": cfg.model.arch,
            "model_kwargs": {"dropout": cfg.model.dropout, **cfg.model.kwargs},
            "labels": list(labels),
            "preprocess": {
                "mean": cfg.preprocess.mean,
                "std": cfg.preprocess.std,
                "crop_margin": cfg.preprocess.crop_margin,
            },
            "params": params,
            "macs": macs,
            "commit": commit,
            "teachers": teacher_info,
            "init": init_record,
            # and the init's (on resume init_record comes from the checkpoint) and the
            # teachers'
            "inthewild_people": sorted(
                wild_people
                | set((init_record or {}).get("inthewild_people", []))
                | (set() if teachers is None else teachers.inthewild_people)
            ),
            "placement": place.describe(),
        }
        if summ["accuracy"] > best_acc:
            best_acc = summ["accuracy"]
            _save_atomic(
                {**state, "model": _cpu_state(eval_model), "epoch": epoch + 1, "val": summ},
                best_path,
            )
            plot_confusion(
                np.array(summ["confusion"]),
                labels,
                run_dir / "confusion.png",
                f"{cfg.run_name} epoch {epoch + 1}: val acc {best_acc:.4f}",
            )
        ck = {
            **state,
            "model": _cpu_state(model),
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "ema": None if ema is None else _cpu_state(ema.module),
            "plateau": None if plateau is None else plateau.state_dict(),
            "epoch": epoch,
            "step": step,
            "best_acc": best_acc,
            "history": history,
            "wall_s": wall,
            "rng": torch.get_rng_state(),
        }
        _save_atomic(ck, last_path)
        plot_curves(history, run_dir / "curves.png")
        if not quiet:
            print(
                f"epoch {epoch + 1}: "
                f"train loss {rec['train_loss']:.3f} acc {rec['train_acc']:.4f} | "
                f"val loss {val_loss:.3f} acc {summ['accuracy']:.4f} F1 {summ['macro_f1']:.4f} | "
                f"best {best_acc:.4f} | {rec['epoch_s']:.0f}s",
                flush=True,
            )
    return run_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", type=Path, help="YAML training config")
    ap.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue a run from its last.pt: with RUN_DIR, from that run's saved "
        "config.yaml (no --config needed); alone, the run named by --config and overrides, "
        "which must match the saved config",
    )
    ap.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        help="where to train (the config's device, default auto: CUDA when torch sees a GPU)",
    )
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.epochs=5")
    args = ap.parse_args(argv)
    if args.device is not None:
        args.overrides.append(f"device={args.device}")
    if isinstance(args.resume, str) and "=" in args.resume:
        # `--resume key=value`: argparse took the first override for RUN_DIR.
        args.overrides.insert(0, args.resume)
        args.resume = True
    cfg: TrainConfig | None = None
    try:
        if isinstance(args.resume, str):
            if args.config is not None:
                raise TrainConfigError("--resume RUN_DIR uses the run's own config: drop --config")
            run = Path(args.resume)
            if not (run / "config.yaml").is_file():
                raise TrainConfigError(f"--resume: {run} holds no config.yaml (not a run)")
            where = [f"out_dir={run.parent}", f"run_name={run.name}"]
            cfg = load_train_config(run / "config.yaml", [*args.overrides, *where])
        else:
            cfg = load_train_config(args.config, args.overrides)
        run_dir = train(cfg, resume=bool(args.resume))
    except (TrainConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = cfg.run_dir if cfg is not None else "RUN_DIR"
        print(f"interrupted: continue with --resume {where}", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":
        print(f"done: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
