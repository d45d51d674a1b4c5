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
from tests.support.app import app_serving, sample_camera
from tests.support.scenes import PROMPT_EVENTS

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


def test_timeline_draws_each_cameras_dominant_emotions_and_alerts(
    tmp_path: Path, mosquitto: Any
) -> None:
    """The timeline page in Chromium, from the daemon's own history: the demo camera's
    face comes and goes, an alert rule fires; the page draws a bar per minute with
    shares that add up to 1 and one marker per alert the API reports."""
    cam = sample_camera("door", fps=10, present_s=3, away_s=2)
    cam["alerts"] = [{"name": "smiling", "emotion": "happy", "min_score": 0.5,
                      "min_duration_s": 1, "cooldown_s": 2}]  # fmt: skip
    sections = {"state": {"dir": str(tmp_path / "state")}, **PROMPT_EVENTS}
    with app_serving(
        tmp_path / "c.yaml", mosquitto.port, "live_view", [cam], sections, token="tok"
    ) as (_, url):
        deadline = time.monotonic() + 60
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "/api/events?token=tok&limit=500", timeout=5) as r:
                events = json.load(r)["events"]
            kinds = [e["type"] for e in events]
            if kinds.count("end") >= 2 and "alert" in kinds:
                break
            time.sleep(0.3)
        dom = Dom()
        dom.feed(dump_dom(url + "/timeline?token=tok&window=1h"))
        with urllib.request.urlopen(url + "/api/events?token=tok&limit=500", timeout=5) as r:
            alerts_then = [e for e in json.load(r)["events"] if e["type"] == "alert"]
        day = Dom()
        day.feed(dump_dom(url + "/timeline?token=tok&window=24h"))

    body = next(a for t, a in dom.elements if t == "body")
    assert body.get("data-ready") == "yes" and body.get("data-window") == "1h"
    (section,) = [a for t, a in dom.elements if t == "section"]
    assert section["data-camera"] == "door" and float(section["data-tracked-s"]) > 3
    alerts_before = [e for e in events if e["type"] == "alert"]
    assert len(alerts_before) <= int(section["data-alerts"]) <= len(alerts_then)
    markers = [a for t, a in dom.elements if t == "path" and a.get("class") == "alert"]
    assert len(markers) == int(section["data-alerts"]) >= 1
    bins = [json.loads(a["data-shares"]) for t, a in dom.elements if a.get("class") == "bin"]
    assert 1 <= len(bins) <= 2  # a minute or two of history, minute bins
    for shares in bins:
        assert set(shares) <= set(FER_LABELS) and abs(sum(shares.values()) - 1) < 1e-3
    assert max(bins[-1], key=bins[-1].get) == max(
        (e["emotion"] for e in events if e["type"] == "start"),
        key=[e["emotion"] for e in events].count,
    )
    day_body = next(a for t, a in day.elements if t == "body")
    assert day_body.get("data-ready") == "yes" and day_body.get("data-window") == "24h"
    day_bins = [a for t, a in day.elements if a.get("class") == "bin"]
    assert 1 <= len(day_bins) <= 2  # hour bins (two when the test spans an hour's turn)
