"""Where a training runs: CPU or CUDA, one process or several (``torchrun``).

    python -m trainer.train --config C.yaml --device auto|cpu|cuda
    torchrun --nproc-per-node 2 -m trainer.train --config C.yaml      # DDP

* **Device.** ``auto`` takes CUDA when torch sees a GPU, else the CPU; ``cuda`` on a
  machine without one is a clear error rather than a silent CPU run.
* **Mixed precision** on CUDA only: bfloat16 where the GPU supports it (no loss scaling
  needed), else float16 with a gradient scaler. The CPU always trains in float32: its
  autocast gains little for these small convolutions and changes the numbers.
* **Several processes** (``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``):
  DistributedDataParallel with NCCL on GPUs, gloo on CPUs. Every rank draws the same
  shuffled global batch of ``optim.batch_size`` images and trains on its own
  ``rank::world`` share of it, so the global batch, the learning-rate schedule and the
  number of steps per epoch are those of a one-process run. On GPUs batch norm is
  synchronised across ranks (SyncBatchNorm), so its statistics are over the global
  batch; torch has no SyncBatchNorm on the CPU, so there each rank normalises over its
  own share (the trade-off the gloo test measures: a two-process run follows the
  one-process one within the tolerance it states, not bit for bit). Only
  rank 0 writes checkpoints, metrics, plots and messages; every rank evaluates (the
  validation set is small), so all take the same early-stop decision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from trainer.config import TrainConfig, TrainConfigError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: float32
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def describe(self) -> dict[str, object]:
        return {
            "device": str(self.device),
            "amp": None if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch."),
            "world_size": self.world,
            "backend": (
                None if not self.distributed else ("nccl" if self.device.type == "cuda" else "gloo")
            ),
        }


def resolve_device(requested: str, cuda_available: bool | None = None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` -> a torch device (index chosen later, per rank)."""
    have = torch.cuda.is_available() if cuda_available is None else cuda_available
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not have:
            raise TrainConfigError(
                "device: cuda, but torch sees no CUDA GPU (a CPU-only torch build, no "
                "driver, or CUDA_VISIBLE_DEVICES empty); use device=auto or cpu"
            )
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cuda" if have else "cpu")
    raise TrainConfigError(f"device: {requested!r} (allowed: auto, cpu, cuda)")


def amp_dtype(
    device: torch.device, amp: str, bf16_supported: bool | None = None
) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``; None means float32."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    bf16 = torch.cuda.is_bf16_supported() if bf16_supported is None else bf16_supported
    if amp == "bf16":
        if not bf16:
            raise TrainConfigError("amp: bf16, but this GPU has no bfloat16; use auto or fp16")
        return torch.bfloat16
    return torch.bfloat16 if bf16 else torch.float16


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise TrainConfigError(f"${name}={raw!r} is not an integer (set by torchrun)") from None


def setup(cfg: TrainConfig) -> Placement:
    """Resolve the device, join the process group under torchrun, seed and set threads."""
    device = resolve_device(cfg.device)
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if cfg.deterministic:
        # cuBLAS needs this before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 48x48 inputs: tune once
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise TrainConfigError("the process group disagrees with $WORLD_SIZE/$RANK")
        if cfg.optim.batch_size % world:
            raise TrainConfigError(
                f"optim.batch_size {cfg.optim.batch_size} must divide by the {world} "
                "processes (each trains on an equal share of the global batch)"
            )
    torch.manual_seed(cfg.seed)  # the same on every rank: same init, same shuffles
    torch.set_num_threads(cfg.threads)
    return Placement(device, amp_dtype(device, cfg.amp), rank, world, local_rank)


def wrap(model: nn.Module, place: Placement) -> nn.Module:
    """The model to train: itself, or a DDP wrapper under torchrun (SyncBatchNorm on GPUs)."""
    if not place.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if place.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [place.device.index] if place.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints and the EMA hold)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def all_sum(values: list[float], place: Placement) -> list[float]:
    """Sums of per-rank numbers (epoch loss, correct, seen) over all ranks."""
    if not place.distributed:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=place.device)
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def teardown(place: Placement) -> None:
    if place.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
