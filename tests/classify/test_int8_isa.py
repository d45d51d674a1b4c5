"""The bundled int8 files compute the same probabilities on an x86 CPU without VNNI as on
one with it.

onnxruntime's u8s8 kernels take a different path on AVX2-only CPUs (``vpmaddubsw``, whose
16-bit sums saturate for 8-bit weights) than on CPUs with VNNI; 7-bit weights
(``trainer.quantize``'s default) cannot saturate, so the int8 layers compute the same
sums on both. What may still differ is float rounding in the layers kept float (first
convolution, classifier, the ensemble's mean), where AVX-512 and AVX2 kernels add in a
different order: a value that lands on a rounding boundary of the next quantization
moves one step. Measured on 192 FER+ val faces: bit-identical for the single models, at
most 0.0015 for `accurate` (two members, twice the float layers); the former 8-bit files
moved probabilities by 0.014 to 0.063 and changed decisions. Hence: no decision may
change, probabilities within ``PROB_TOL``.

An AVX2-only CPU is emulated with qemu's user mode and its Haswell model (AVX2 and FMA,
no AVX-512, no VNNI); the child reports the features it saw, so the check cannot pass on
a CPU model that qemu ignored. Emulated: slow (about a second a face), hence few faces,
and no timing is taken from it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_daemon.config import BUNDLED_MODELS

QEMU = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
_FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
HOST_VNNI = " avx512_vnni" in _FLAGS or " avx_vnni" in _FLAGS
CPU_MODEL = "Haswell-v4"  # AVX2 + FMA; no AVX-512, no VNNI
FACES = 24
PROB_TOL = 0.005  # float-layer rounding (see above); 8-bit saturation moved 0.014-0.063

pytestmark = [
    pytest.mark.measure,  # about a minute a model under emulation: CI's `make measure` step
    pytest.mark.skipif(QEMU is None, reason="needs qemu-user-static (scripts/system-deps.sh)"),
    pytest.mark.skipif(sys.platform != "linux", reason="qemu user mode runs Linux binaries"),
    # Without VNNI here both runs would take the same kernels and agree trivially.
    pytest.mark.skipif(not HOST_VNNI, reason="this CPU has no VNNI: nothing to compare against"),
]

CHILD = """
import json, sys
import numpy as np
from numpy._core._multiarray_umath import __cpu_features__ as f
from edge_daemon.classify.model import EmotionModel
model, faces, out = sys.argv[1:4]
m = EmotionModel(model, providers="cpu", threads=1)
np.save(out, m.predict(np.load(faces)))
print(json.dumps({k: bool(f.get(k)) for k in ("AVX2", "FMA3", "AVX512F", "AVX512_ICL")}))
"""


def faces() -> np.ndarray:
    """48x48 grey crops of the public-domain astronaut photo's face: shifted, scaled,
    darkened and brightened, so activations cover a wide range."""
    import cv2
    from skimage import data

    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(0)
    out = []
    for i in range(FACES):
        size = int(rng.integers(110, 170))
        x, y = int(rng.integers(160, 200)), int(rng.integers(50, 90))
        crop = cv2.resize(grey[y : y + size, x : x + size], (48, 48), interpolation=cv2.INTER_AREA)
        gamma = (0.5, 1.0, 2.0)[i % 3]
        out.append(np.clip(255 * (crop / 255.0) ** gamma, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("isa") / "faces.npy"
    np.save(path, faces())
    return path


def run_child(tmp_path: Path, inputs: Path, model: Path, emulate: bool) -> tuple[np.ndarray, dict]:
    out = tmp_path / f"out_{emulate}.npy"
    cmd = [sys.executable, "-c", CHILD, str(model), str(inputs), str(out)]
    if emulate:
        cmd = [str(QEMU), "-cpu", CPU_MODEL, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return np.load(out), json.loads(r.stdout.strip().splitlines()[-1])


# nano above all: it is what model.bundled auto runs on CPUs without VNNI.
@pytest.mark.parametrize("name", ["fast", "nano", "fer2013", "accurate"])
def test_bundled_int8_gives_the_same_results_without_vnni(
    tmp_path: Path, inputs: Path, name: str
) -> None:
    native, _ = run_child(tmp_path, inputs, BUNDLED_MODELS[name], emulate=False)
    emulated, seen = run_child(tmp_path, inputs, BUNDLED_MODELS[name], emulate=True)
    assert seen["AVX2"] and seen["FMA3"] and not seen["AVX512F"], seen
    diff = float(np.abs(native - emulated).max())
    changed = int((native.argmax(1) != emulated.argmax(1)).sum())
    msg = f"{name}: probabilities differ by up to {diff:.4f}, {changed} decisions changed"
    assert changed == 0 and diff <= PROB_TOL, msg
