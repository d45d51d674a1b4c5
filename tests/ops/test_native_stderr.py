"""Native libraries' stderr (libjpeg's "Corrupt JPEG data", LiteRT's notices) goes
through logging, rate-limited, instead of one raw line per damaged frame."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from edge_daemon.ops.native_stderr import LineLimiter, kind_of

REPO = Path(__file__).resolve().parents[2]


def test_lines_differing_only_in_numbers_are_one_kind() -> None:
    a = "Corrupt JPEG data: 2 extraneous bytes before marker 0xd9"
    b = "Corrupt JPEG data: 517 extraneous bytes before marker 0xd0"
    assert kind_of(a) == kind_of(b) != kind_of("Corrupt JPEG data: premature end of data")


def test_first_line_logged_repeats_counted_and_summarised() -> None:
    lim = LineLimiter(summary_s=60, max_kinds=2)
    line = "Corrupt JPEG data: {} extraneous bytes before marker 0xd9"
    out = lim.feed(line.format(1), now=0.0)
    assert out == [(logging.WARNING, line.format(1))]
    assert lim.feed("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", 0.1) == [
        (logging.INFO, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    ]
    for i in range(2, 1000):
        assert lim.feed(line.format(i), now=i / 100) == []
    # A third kind over max_kinds shares the "other" slot: logged once, then counted.
    assert lim.feed("something else 1", 10.0) == [(logging.WARNING, "something else 1")]
    assert lim.feed("and another", 11.0) == []
    (summary, other) = lim.feed(line.format(5), now=61.0)
    assert summary == (
        logging.WARNING,
        f"999 more like this in the last 61 s, latest: {line.format(5)}",
    )
    assert other[1].startswith("1 more like this") and lim.lines == 1003
    assert lim.due(200.0, force=True) == []  # nothing left to summarise


SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import cv2, numpy as np
    from edge_daemon.ops.native_stderr import NativeStderr

    native = NativeStderr()
    native.install()
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=fmt)
    img = np.full((120, 160, 3), 99, np.uint8)  # (libjpeg says nothing for 60x80)
    data = bytearray(cv2.imencode(".jpg", img)[1].tobytes())
    end = data.rfind(b"\\xff\\xd9")
    data[end:end] = b"\\x00\\x01\\x02"  # extraneous bytes before the end marker
    for _ in range(500):
        assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    logging.getLogger("app").info("python logging still works")
    native.uninstall()
    print("after uninstall", file=sys.stderr)
    """
)


def test_libjpeg_warnings_become_one_log_line_and_a_count() -> None:
    # Before: 500 raw "Corrupt JPEG data" lines on stderr, outside logging.
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stderr.splitlines()
    raw = [ln for ln in lines if ln.startswith("Corrupt JPEG data")]
    logged = [ln for ln in lines if ln.startswith("WARNING edge_daemon.native: Corrupt JPEG")]
    summary = [ln for ln in lines if "499 more like this" in ln]
    assert raw == [] and len(logged) == 1 and len(summary) == 1, r.stderr[-3000:]
    assert "INFO app: python logging still works" in lines
    assert lines[-1] == "after uninstall"  # fd 2 is the original again
