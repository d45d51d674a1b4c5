"""/api/events on the live view: the daemon's own event history over HTTP, with the
live view's token rules, filters, and errors as JSON with a 400 (in process, a real
App on a demo sample camera whose face comes and goes)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.app import app_serving, sample_camera
from tests.support.scenes import PROMPT_EVENTS

DEMO = sample_camera("door", fps=10, present_s=2, away_s=2)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode()  # the server's plain-text refusals


def test_the_history_is_served_filtered_and_guarded(tmp_path: Path, mosquitto: Any) -> None:
    sections = {"state": {"dir": str(tmp_path / "state")}, **PROMPT_EVENTS}
    with app_serving(
        tmp_path / "c.yaml", mosquitto.port, "live_view", [DEMO], sections, token="tok"
    ) as (_, url):
        deadline = time.monotonic() + 60
        body: Any = {"events": []}
        while time.monotonic() < deadline and len(body["events"]) < 3:
            status, body = get(f"{url}/api/events?token=tok&order=asc")
            assert status == 200, body
            time.sleep(0.3)
        events = body["events"]
        assert len(events) >= 3 and body["count"] == len(events) and not body["truncated"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert {e["type"] for e in events} >= {"start", "end"}

        _, starts = get(f"{url}/api/events?token=tok&type=start")
        assert starts["events"] and all(e["type"] == "start" for e in starts["events"])
        _, one = get(f"{url}/api/events?token=tok&limit=1")
        assert one["count"] == 1 and one["truncated"]
        _, none = get(f"{url}/api/events?token=tok&camera=yard")
        assert none["events"] == []
        since = events[1]["ts"]
        _, later = get(f"{url}/api/events?token=tok&order=asc&since={since}")
        assert later["events"][0]["seq"] == 2

        assert get(f"{url}/api/events")[0] == 401  # the token rule of every route
        status, err = get(f"{url}/api/events?token=tok&limit=0")
        assert status == 400 and "limit must be" in err["error"]
        status, err = get(f"{url}/api/events?token=tok&since=yesterday")
        assert status == 400 and "ISO 8601" in err["error"]


def test_without_a_state_directory_the_api_says_why(tmp_path: Path, mosquitto: Any) -> None:
    with app_serving(tmp_path / "c.yaml", mosquitto.port, "live_view") as (_, url):
        status, err = get(f"{url}/api/events")
    assert status == 404 and "without a state directory" in err["error"]


def test_an_alert_keeps_its_picture_in_the_history(tmp_path: Path, mosquitto: Any) -> None:
    cam = {**DEMO, "alerts": [{"name": "smile", "emotion": "happy", "min_score": 0.5,
                               "min_duration_s": 0.5, "cooldown_s": 1}]}  # fmt: skip
    sections = {"state": {"dir": str(tmp_path / "state")}, **PROMPT_EVENTS}
    sections["mqtt"] = {"host": "127.0.0.1", "port": mosquitto.port, "publish_images": True}
    with app_serving(tmp_path / "c.yaml", mosquitto.port, "live_view", [cam], sections) as (
        _,
        url,
    ):
        deadline = time.monotonic() + 60
        alerts: list[Any] = []
        while time.monotonic() < deadline and not alerts:
            _, body = get(f"{url}/api/events?type=alert")
            alerts = [e for e in body["events"] if e.get("picture")]
            time.sleep(0.3)
        assert alerts, body
        a = alerts[0]
        with urllib.request.urlopen(
            f"{url}/api/picture?camera=door&seq={a['seq']}", timeout=10
        ) as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read()[:2] == b"\xff\xd8"
        _, starts = get(f"{url}/api/events?type=start")
        assert not any("picture" in e for e in starts["events"])  # only alerts keep one
        assert get(f"{url}/api/picture?camera=door&seq=999999")[0] == 404
        assert get(f"{url}/api/picture?camera=door&seq=x")[0] == 400
