"""The runtime install is slim: the wheel holds the daemon (and the measuring tools, whose
heavy dependencies are an extra), not the trainer, and a venv with only ``pip install
WHEEL`` runs the default config to its first event, with no torch, matplotlib or
scikit-image in it.

Installs the wheel's dependencies from the package index (or pip's cache), like a user's
box would; slow, so marked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, default_config_on_free_port

REPO = Path(__file__).resolve().parents[2]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # not the test venv's
HEAVY = {"torch", "matplotlib", "scikit-image", "onnx", "onnxscript", "tqdm"}

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=900, cwd=cwd
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the checkout's files: setuptools would otherwise reuse the
    # checkout's build/ folder, whose stale files from earlier builds end up in the wheel.
    src = tmp_path_factory.mktemp("src")
    files = run("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    r = run(*pip, "-w", out, src)
    assert r.returncode == 0, r.stdout + r.stderr
    (path,) = out.glob("edge_daemon-*.whl")
    return path


def requirements(wheel: Path) -> tuple[set[str], dict[str, set[str]]]:
    """(runtime requirement names, {extra: names}) from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        msg = Parser().parsestr(z.read(meta).decode())
    runtime: set[str] = set()
    extras: dict[str, set[str]] = {}
    for req in msg.get_all("Requires-Dist") or []:
        spec, _, marker = req.partition(";")
        name = spec.strip().split(" ")[0]
        for sep in "<>=!~[(":
            name = name.split(sep)[0]
        if "extra ==" in marker:
            extra = marker.split("extra ==")[1].strip().strip("'\"")
            extras.setdefault(extra, set()).add(name.lower())
        else:
            runtime.add(name.lower())
    return runtime, extras


def test_wheel_declares_a_slim_runtime_and_ships_no_trainer(wheel: Path) -> None:
    runtime, extras = requirements(wheel)
    assert runtime and not runtime & HEAVY, runtime & HEAVY
    assert {"onnxruntime", "ai-edge-litert", "paho-mqtt"} <= runtime
    assert "torch" in extras["train"] and "matplotlib" in extras["bench"]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"edge_daemon", "edge_bench"}, tops
    for data in (
        "edge_daemon/models/emotion.onnx",
        "edge_daemon/sources/astronaut.jpg",
        "edge_daemon/py.typed",
    ):
        assert data in names


def test_runtime_only_venv_runs_the_default_config(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert run(BASE_PYTHON, "-m", "venv", venv).returncode == 0
    r = run(venv / "bin/pip", "install", "-q", wheel)
    assert r.returncode == 0, r.stdout + r.stderr
    py = venv / "bin/python"
    for module in ("torch", "matplotlib", "skimage", "trainer"):
        r = run(py, "-c", f"import {module}", cwd=tmp_path)  # not the checkout's folder
        assert r.returncode != 0, f"{module} is importable in the runtime-only venv"

    config, port = default_config_on_free_port(tmp_path / "config.yaml")
    d = Daemon(
        config, tmp_path / "daemon.log", command=[str(venv / "bin/edge-daemon")], cwd=tmp_path
    )
    try:
        col = d.subscribe(port)
        try:
            col.wait_for(
                lambda ms: any(m.topic == "edge/sample/events" for m in ms),
                timeout=60,
                what="an event from the sample camera",
            )
        finally:
            col.close()
    finally:
        d.stop()
    assert d.proc.returncode == 0 and "Traceback" not in d.log(), d.log()
