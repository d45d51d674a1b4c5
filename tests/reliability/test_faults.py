"""Fault matrix rows run against the real daemon (CLI subprocess) and real components.

See docs/RELIABILITY.md for the whole matrix and where each row is tested.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mqtt import MqttCollector
from tests.support.app import sample_camera
from tests.support.daemon import Daemon, write_config
from tests.support.scenes import PROMPT_EVENTS, comes_and_goes_camera

OUTAGE_S = 30.0


def seqs(col: MqttCollector, camera: str) -> list[int]:
    return [m.json()["seq"] for m in col.on(f"edge/{camera}/events")]


def proc_counts(pid: int) -> tuple[int, int]:
    """(threads, open file descriptors) of a live process, from /proc."""
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_broker_outage_of_30s_loses_no_event(
    tmp_path: Path, mosquitto_factory: Any, mqtt_collector: Any, record_property: Any
) -> None:
    broker = mosquitto_factory(persistence=True)
    col: MqttCollector = mqtt_collector(
        broker, ["edge/door/events", "edge/available"], client_id="durable", clean_session=False
    )
    cam = comes_and_goes_camera(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", broker.port, [cam], **PROMPT_EVENTS)
    d = Daemon(cfg, tmp_path / "daemon.log")
    try:
        col.wait_for(lambda ms: len(seqs(col, "door")) >= 3, 90, "first events")
        broker.stop()
        before = max(seqs(col, "door"))
        time.sleep(OUTAGE_S)  # events keep being produced into the outbox meanwhile
        assert d.proc.poll() is None
        broker.start()
        t_back = time.monotonic()
        # Events made during the outage arrive (a start and an end every 2.5 s loop).
        col.wait_for(
            lambda ms: max(seqs(col, "door")) >= before + OUTAGE_S / 2.5, 60, "outage events"
        )
        got = seqs(col, "door")
        firsts = list(dict.fromkeys(got))  # QoS 1: duplicates allowed, gaps not
        assert firsts == list(range(1, max(got) + 1)), got
        record_property("events_made_during_outage", max(got) - before)
        record_property("outage_events_delivered_s", round(time.monotonic() - t_back, 2))
        record_property("duplicates", len(got) - len(firsts))
        online = [m for m in col.on("edge/available") if m.t > t_back]
        deadline = time.monotonic() + 15
        while not online and time.monotonic() < deadline:
            time.sleep(0.2)
            online = [m for m in col.on("edge/available") if m.t > t_back]
        assert online and online[-1].payload == b"online"
    finally:
        d.stop()
    log = d.log()
    assert "Traceback" not in log
    assert "events dropped" not in log


def stored(state: Path) -> tuple[int, int]:
    """(events waiting in the daemon's store, highest seq stored so far), read-only."""
    conn = sqlite3.connect(f"file:{state / 'events.db'}?mode=ro", uri=True, timeout=5)
    try:
        pending = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        top = conn.execute("SELECT MAX(seq) FROM seqs").fetchone()[0] or 0
    finally:
        conn.close()
    return int(pending), int(top)


def wait_stored_beyond(state: Path, seq: int, timeout: float = 60.0) -> int:
    """Wait until the store holds a seq above ``seq`` (the running daemon produced
    events since ``seq``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state / "events.db").exists():
            with contextlib.suppress(sqlite3.OperationalError):  # being created
                top = stored(state)[1]
                if top > seq:
                    return top
        time.sleep(0.2)
    raise AssertionError(f"no event above seq {seq} was stored within {timeout:g} s")


@pytest.mark.slow
def test_restarts_during_a_broker_outage_lose_no_event(
    tmp_path: Path, mosquitto_factory: Any, mqtt_collector: Any, record_property: Any
) -> None:
    """One 30 s outage; in it a clean restart (SIGTERM) and then a kill -9, each followed
    by a new start. Every event any of the three runs produced arrives afterwards, seq
    without a gap across the runs, duplicates only as QoS 1 allows."""
    broker = mosquitto_factory(persistence=True)
    col: MqttCollector = mqtt_collector(
        broker, "edge/door/events", client_id="durable-restarts", clean_session=False
    )
    state = tmp_path / "state"
    cfg = write_config(
        tmp_path / "c.yaml",
        broker.port,
        [comes_and_goes_camera(tmp_path)],
        **PROMPT_EVENTS,
        state={"dir": str(state)},
    )
    runs = [Daemon(cfg, tmp_path / "run1.log")]
    try:
        col.wait_for(lambda ms: len(seqs(col, "door")) >= 3, 90, "first events")
        broker.stop()
        outage_start = time.monotonic()
        before = max(seqs(col, "door"))
        top = wait_stored_beyond(state, before + 2)  # three events waiting
        took = runs[-1].stop()  # clean restart in the outage
        assert runs[-1].proc.returncode == 0 and took < 3.0
        left_by_term = stored(state)
        runs.append(Daemon(cfg, tmp_path / "run2.log"))
        top = wait_stored_beyond(state, left_by_term[1] + 2)
        runs[-1].proc.kill()  # and a kill -9
        runs[-1].proc.wait(5)
        runs[-1].stop()
        left_by_kill = stored(state)
        runs.append(Daemon(cfg, tmp_path / "run3.log"))
        top = wait_stored_beyond(state, left_by_kill[1] + 2)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_start)))
        top = stored(state)[1]
        broker.start()
        t_back = time.monotonic()
        col.wait_for(lambda ms: max(seqs(col, "door")) >= top, 60, f"seq {top}")
        got = [m.json() for m in col.on("edge/door/events")]
        firsts = list({e["seq"]: e for e in got}.values())  # QoS 1: repeats allowed
        assert [e["seq"] for e in firsts] == list(range(1, max(e["seq"] for e in got) + 1))
        assert len({e["instance_id"] for e in firsts}) == 1
        boots = [e["boot"] for e in firsts]
        assert boots == sorted(boots) and set(boots) >= {1, 2, 3}, boots
        record_property("stored_at_sigterm", left_by_term[0])
        record_property("stored_at_kill", left_by_kill[0])
        record_property("events_made_during_outage", top - before)
        record_property("outage_events_delivered_s", round(time.monotonic() - t_back, 2))
        record_property("duplicates", len(got) - len(firsts))
    finally:
        for run in runs:
            run.stop()
    for run in runs:
        assert "Traceback" not in run.log(), run.log()
    assert "restored" in runs[1].log() and "restored" in runs[2].log()


@pytest.mark.slow
def test_a_full_disk_is_counted_and_reported_and_events_still_flow(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any, record_property: Any
) -> None:
    """The daemon's files may not grow past 256 KiB (RLIMIT_FSIZE: writes fail with
    EFBIG, as on a full disk): the event store's write-ahead log soon cannot grow, and
    the daemon keeps running, keeps delivering from memory, and says so."""
    col: MqttCollector = mqtt_collector(mosquitto, ["edge/door/events", "edge/stats"])
    cfg = write_config(
        tmp_path / "c.yaml",
        mosquitto.port,
        [comes_and_goes_camera(tmp_path)],
        **PROMPT_EVENTS,
        state={"dir": str(tmp_path / "state")},
    )
    d = Daemon(cfg, tmp_path / "daemon.log", file_size_limit=256 * 1024)
    try:

        def failing(ms: list[Any]) -> bool:
            stats = [m.json()["mqtt"] for m in ms if m.topic == "edge/stats"]
            return bool(stats) and stats[-1]["store_failures"] > 0

        col.wait_for(failing, 120, "the store to run out of room")
        after = max(seqs(col, "door"))
        col.wait_for(lambda ms: max(seqs(col, "door")) >= after + 4, 60, "events after")
        stats = [m.json()["mqtt"] for m in col.on("edge/stats")][-1]
        assert d.proc.poll() is None
        record_property("events_before_the_store_filled", after)
    finally:
        d.stop()
    got = seqs(col, "door")
    assert list(dict.fromkeys(got)) == list(range(1, max(got) + 1)), got
    assert "events.db: cannot" in stats["store_problem"], stats
    log = d.log()
    assert "Traceback" not in log
    assert log.count("free disk space") == 1, log[-3000:]  # said once, with what to do


@pytest.mark.slow
def test_sigterm_with_four_busy_cameras(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any, record_property: Any
) -> None:
    col: MqttCollector = mqtt_collector(mosquitto, "edge/#")
    # Four sample cameras at 60 fps: together far more than two cores analyse, so every
    # pipeline is busy and every queue is dropping when SIGTERM arrives.
    cams = [sample_camera(f"cam{i}", fps=60) for i in range(4)]
    d = Daemon(write_config(tmp_path / "c.yaml", mosquitto.port, cams), tmp_path / "d.log")
    col.wait_for(
        lambda ms: {m.topic for m in ms} >= {f"edge/cam{i}/events" for i in range(4)},
        120,
        "events from all four",
    )
    took = d.stop()
    record_property("exit_s", round(took, 2))
    assert d.proc.returncode == 0
    assert took < 3.0, f"exit took {took:.2f}s"
    avail = col.wait_for(
        lambda ms: any(m.topic == "edge/available" and m.payload == b"offline" for m in ms),
        5,
        "offline",
    )
    assert avail
    log = d.log()
    assert "threads still running after stop" not in log and "Traceback" not in log
    # Every track got its end event before the exit.
    for i in range(4):
        types = [m.json()["type"] for m in col.on(f"edge/cam{i}/events")]
        assert types.count("start") == types.count("end"), (i, types)


def rtsp_daemon(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any, server: Any, stall_timeout_s: float
) -> tuple[Daemon, MqttCollector]:
    """The daemon on one RTSP camera ``door`` with fast reconnects, and a state collector."""
    col: MqttCollector = mqtt_collector(mosquitto, "edge/door/state")
    cam = {
        "name": "door",
        "source": {"type": "rtsp", "url": server.url, "open_timeout_s": 5},
        "stall_timeout_s": stall_timeout_s,
        "reconnect_initial_s": 0.5,
        "reconnect_max_s": 1,
    }
    d = Daemon(write_config(tmp_path / "c.yaml", mosquitto.port, [cam]), tmp_path / "d.log")
    return d, col


@pytest.mark.slow
def test_rtsp_server_killed_five_times(
    tmp_path: Path,
    mosquitto: Any,
    mqtt_collector: Any,
    rtsp_server: Any,
    h264_video: Any,
    record_property: Any,
) -> None:
    server = rtsp_server(h264_video(seconds=600, fps=15), "/cam")
    d, col = rtsp_daemon(tmp_path, mosquitto, mqtt_collector, server, stall_timeout_s=3)

    def status_after(status: str, n: int, timeout: float) -> None:
        col.wait_for(lambda ms: any(m.json()["status"] == status for m in ms[n:]), timeout, status)

    try:
        status_after("online", 0, 90)
        time.sleep(2)
        counts = [proc_counts(d.proc.pid)]
        reconnect_s = []
        for _ in range(5):
            n = len(col.messages)
            server.stop()
            status_after("reconnecting", n, 15)
            n = len(col.messages)
            server.start()
            t0 = time.monotonic()
            status_after("online", n, 15)
            reconnect_s.append(time.monotonic() - t0)
            time.sleep(2)  # let threads of the old connection finish
            counts.append(proc_counts(d.proc.pid))
        record_property("reconnect_s", [round(x, 2) for x in reconnect_s])
        record_property("threads_fds", counts)
        assert max(reconnect_s) < 5.0, reconnect_s
        threads, fds = zip(*counts, strict=True)
        # Flat: after five cycles no more threads or descriptors than after the first.
        assert max(threads[1:]) <= threads[1] + 1 and threads[-1] <= threads[0] + 2, counts
        assert fds[-1] <= fds[1] + 2, counts
    finally:
        d.stop()
    assert "Traceback" not in d.log()


@pytest.mark.slow
def test_connected_but_silent_stream_is_detected_as_stalled(
    tmp_path: Path,
    mosquitto: Any,
    mqtt_collector: Any,
    rtsp_server: Any,
    h264_video: Any,
    record_property: Any,
) -> None:
    server = rtsp_server(h264_video(seconds=600, fps=15), "/cam")
    d, col = rtsp_daemon(tmp_path, mosquitto, mqtt_collector, server, stall_timeout_s=2)
    try:
        col.wait_for(lambda ms: any(m.json()["status"] == "online" for m in ms), 90, "online")
        n = len(col.messages)
        server.freeze(True)  # sockets stay open, no more packets
        frozen = time.monotonic()
        try:
            col.wait_for(
                lambda ms: any(m.json()["status"] == "reconnecting" for m in ms[n:]), 15, "stall"
            )
            record_property("stall_detected_s", round(time.monotonic() - frozen, 2))
            state = [m.json() for m in col.messages[n:] if m.json()["status"] == "reconnecting"]
            assert "no frame" in (state[0].get("error") or "")
        finally:
            server.freeze(False)
        n = len(col.messages)
        resumed = time.monotonic()
        col.wait_for(lambda ms: any(m.json()["status"] == "online" for m in ms[n:]), 20, "back")
        record_property("online_after_resume_s", round(time.monotonic() - resumed, 2))
    finally:
        d.stop()
