"""The live view in a real headless browser (Debian's chromium).

Chromium loads the page from a running App, runs its JavaScript (state polling) and
decodes the MJPEG stream; ``--dump-dom`` then gives the DOM as the user would see it.
The page marks the picture with ``data-frames``/``data-width`` when Chromium has decoded
frames, so the test checks the stream really arrives, not only that the page loaded.
"""

from __future__ import annotations

import html.parser
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge_daemon.labels import FER_LABELS
from edge_daemon.web.live import EMOJI
from tests.support.app import app_serving

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium (make test installs Debian's chromium as root)"
)


def dump_dom(url: str, budget_ms: int = 5000) -> str:
    assert CHROMIUM is not None
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout.decode()


class Dom(html.parser.HTMLParser):
    """Collects elements' attributes and the text of elements with a class."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, list[str]] = {}
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag not in ("img", "br", "meta", "link", "input"):
            self._stack.append(a.get("class", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("img", "br", "meta", "link", "input") and self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1] and data.strip():
            self.texts.setdefault(self._stack[-1], []).append(data.strip())


def test_page_shows_stream_faces_emoji_and_events(tmp_path: Path, mosquitto: Any) -> None:
    with app_serving(tmp_path / "c.yaml", mosquitto.port, "live_view", token="tok") as (_, url):
        deadline = time.monotonic() + 30  # let a track start (min_hits, establish_s)
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "/api/state?token=tok", timeout=5) as r:
                if json.load(r)["cameras"]["door"]["events"]:
                    break
            time.sleep(0.2)
        dom = Dom()
        dom.feed(dump_dom(url + "/?token=tok"))

    sections = [a for t, a in dom.elements if t == "section"]
    assert [s.get("data-camera") for s in sections] == ["door"]
    imgs = [a for t, a in dom.elements if t == "img" and "stream/door.mjpg" in a.get("src", "")]
    assert len(imgs) == 1
    assert int(imgs[0].get("data-frames", "0")) >= 1, imgs[0]  # Chromium decoded the stream
    assert imgs[0].get("data-width") == "640"
    faces = [a for t, a in dom.elements if t == "li" and a.get("class") == "face"]
    assert faces, dom.texts
    emotion = faces[0]["data-emotion"]
    assert emotion in FER_LABELS
    assert emotion in dom.texts["emotion"]
    assert EMOJI[emotion] in dom.texts["emoji"]
    assert any(" start " in e for e in dom.texts["event"])
    assert "online" in dom.texts["info status-online"][0]
