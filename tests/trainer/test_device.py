"""Where a training runs: device choice, mixed precision, and DistributedDataParallel
with two processes on the CPU (gloo) against one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.config import TrainConfigError, load_train_config  # noqa: E402
from trainer.device import amp_dtype, resolve_device  # noqa: E402
from trainer.train import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

#: How far a two-process (gloo) run's per-epoch training loss may be from the one-process
#: run's, relative. Not bit-equal: torch has no SyncBatchNorm on the CPU, so each rank
#: normalises over its half of the batch (on GPUs the statistics are synchronised).
#: Measured on this test's set: 0.2%, 0.5% and 1.8% at epochs 1, 2 and 3.
DDP_LOSS_RTOL = 0.05


def test_auto_takes_cuda_only_when_there_is_one() -> None:
    assert resolve_device("auto", cuda_available=False).type == "cpu"
    assert resolve_device("auto", cuda_available=True).type == "cuda"
    assert resolve_device("cpu", cuda_available=True).type == "cpu"
    assert resolve_device("cuda", cuda_available=True).type == "cuda"
    with pytest.raises(TrainConfigError, match="torch sees no CUDA GPU"):
        resolve_device("cuda", cuda_available=False)


def test_mixed_precision_only_on_cuda() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype(cpu, "auto") is None
    assert amp_dtype(cpu, "fp16") is None  # the CPU always trains in float32
    assert amp_dtype(gpu, "off") is None
    assert amp_dtype(gpu, "auto", bf16_supported=True) is torch.bfloat16
    assert amp_dtype(gpu, "auto", bf16_supported=False) is torch.float16
    assert amp_dtype(gpu, "fp16", bf16_supported=True) is torch.float16
    with pytest.raises(TrainConfigError, match="no bfloat16"):
        amp_dtype(gpu, "bf16", bf16_supported=False)


def test_config_refuses_unknown_device_and_amp() -> None:
    with pytest.raises(TrainConfigError, match="device: 'tpu'"):
        load_train_config(None, ["device=tpu"])
    with pytest.raises(TrainConfigError, match="amp: 'fp8'"):
        load_train_config(None, ["amp=fp8"])


def _folder(root: Path, per_class: int = 32, val_per_class: int = 10) -> Path:
    """A learnable synthetic set: each class is a faint bar at its own height, in noise
    (faint, so the loss falls over several epochs instead of in a few steps)."""
    rng = np.random.default_rng(0)
    for c, label in enumerate(FER_LABELS):
        for split, n in (("train", per_class), ("val", val_per_class)):
            d = root / split / label
            d.mkdir(parents=True)
            for k in range(n):
                img = rng.integers(0, 200, (48, 48)).astype(np.uint8)
                img[4 + 6 * c : 8 + 6 * c, 6:42] += 40
                cv2.imwrite(str(d / f"{k}.png"), img)
    return root


def _overrides(data: Path, out: Path, name: str) -> list[str]:
    # No augmentation, dropout or EMA: what is compared is the optimisation itself.
    return [
        "data.format=folder",
        f"data.path={data}",
        "data.dedupe=false",
        f"out_dir={out}",
        f"run_name={name}",
        "model.arch=edgefer2",
        "model.dropout=0.0",
        "model.kwargs={stem: 8, stages: [[f, 16, 1, 2], [f, 16, 1, 2], [m, 24, 1, 2], "
        "[m, 24, 1, 2]], head_dim: 24}",
        "optim.batch_size=32",
        "optim.epochs=3",
        "optim.lr=0.01",
        "optim.warmup_epochs=0",
        "optim.ema_decay=0",
        "optim.label_smoothing=0",
        "optim.channels_last=false",
        "augment={hflip: 0.0, rotate_deg: 0.0, scale: [1.0, 1.0], shift: 0.0, "
        "brightness: 0.0, contrast: 0.0, erase_p: 0.0}",
        "threads=1",
    ]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_device_auto_trains_on_the_cpu_here(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto would take it")
    data = _folder(tmp_path / "data", per_class=4, val_per_class=2)
    ov = [*_overrides(data, tmp_path / "runs", "auto"), "optim.epochs=1"]
    assert main(["--device", "auto", *ov]) == 0
    out = capsys.readouterr().out
    assert "device cpu, precision float32" in out
    ck = torch.load(tmp_path / "runs" / "auto" / "best.pt", map_location="cpu", weights_only=False)
    assert ck["placement"] == {"device": "cpu", "amp": None, "world_size": 1, "backend": None}
    assert "device: auto" in (tmp_path / "runs" / "auto" / "config.yaml").read_text()


def test_device_cuda_without_a_gpu_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data = _folder(tmp_path / "data", per_class=2, val_per_class=1)
    assert main(["--device", "cuda", *_overrides(data, tmp_path / "runs", "cuda")]) == 2
    err = capsys.readouterr().err
    assert "device: cuda, but torch sees no CUDA GPU" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_two_gloo_processes_follow_one_process_with_the_same_global_batch(
    tmp_path: Path,
) -> None:
    data = _folder(tmp_path / "data")
    runs = tmp_path / "runs"
    one = _run(["-m", "trainer.train", "--device", "cpu", *_overrides(data, runs, "one")])
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = ["-m", "torch.distributed.run", "--nproc-per-node", "2"]
    two = _run(
        [
            *torchrun,
            "--master-port",
            str(_free_port()),
            "-m",
            "trainer.train",
            "--device",
            "cpu",
            *_overrides(data, runs, "two"),
        ]
    )
    assert two.returncode == 0, two.stderr[-3000:]
    # Rank 0 alone writes: one metrics line per epoch, one "done", one device line.
    m1, m2 = _metrics(runs / "one"), _metrics(runs / "two")
    assert [r["epoch"] for r in m2] == [1, 2, 3]
    assert two.stdout.count("done:") == 1
    assert "2 processes (gloo)" in two.stdout
    ck = torch.load(runs / "two" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["placement"]["world_size"] == 2
    assert ck["step"] == len(m2) * (7 * 32 // 32)  # the one-process number of steps
    # It learned (the set is easy), and like the one-process run did.
    assert m2[-1]["train_loss"] < 0.7 * m2[0]["train_loss"]
    for a, b in zip(m1, m2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=DDP_LOSS_RTOL)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the repository, one OpenMP thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def _free_port() -> int:
    from tests.support.net import free_port

    return free_port()
