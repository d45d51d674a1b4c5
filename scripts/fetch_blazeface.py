"""Re-create the bundled BlazeFace models from PyPI (for auditing the vendored files).

The two .tflite files in edge_daemon/models/ are MediaPipe's face detectors
(Apache-2.0, see LICENSE.mediapipe). They come from the mediapipe 0.10.21 wheel, the
last release that ships them; the daemon runs them with LiteRT (ai-edge-litert).
This script downloads that wheel with pip, extracts the two files and checks their
SHA-256 against the vendored copies:

    .venv/bin/python scripts/fetch_blazeface.py [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "mediapipe==0.10.21"
FILES = {
    "face_detection_short_range.tflite": (
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
    ),
    "face_detection_full_range_sparse.tflite": (
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
    ),
}
DEST = Path(__file__).resolve().parents[1] / "edge_daemon" / "models"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true", help="overwrite the vendored copies")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_28_x86_64",
                WHEEL,
                "-d",
                tmp,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        ok = True
        with zipfile.ZipFile(wheel) as z:
            for name, digest in FILES.items():
                data = z.read(f"mediapipe/modules/face_detection/{name}")
                got = hashlib.sha256(data).hexdigest()
                print(f"{name}: {got} {'OK' if got == digest else 'MISMATCH'}")
                ok &= got == digest
                if args.write and got == digest:
                    (DEST / name).write_bytes(data)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
