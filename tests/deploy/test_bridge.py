"""deploy/mosquitto-bridge.conf between two real Mosquitto brokers: the daemon publishes
to the box's broker, the bridge forwards to a central one over TLS with credentials at
QoS 1; the uplink is cut for 30 s and every event arrives centrally afterwards, in order
per camera, under the box's prefix."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mqtt import MqttCollector, make_tls_files
from tests.support.daemon import Daemon, write_config
from tests.support.scenes import PROMPT_EVENTS, comes_and_goes_camera

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 30.0
pytestmark = pytest.mark.slow


def bridge_conf(central: Any, ca: Path, user: str, password: str) -> str:
    text = (REPO / "deploy" / "mosquitto-bridge.conf").read_text()
    for key, value in {
        "@CENTRAL_HOST@": "127.0.0.1",
        "@CENTRAL_PORT@": str(central.port),
        "@BOX@": "box1",
        "@USERNAME@": user,
        "@PASSWORD@": password,
        "@CA_FILE@": str(ca),
    }.items():
        text = text.replace(key, value)
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    assert not any("@" in line for line in settings)  # every placeholder filled
    return text


def seqs(col: MqttCollector, topic: str) -> list[int]:
    return [m.json()["seq"] for m in col.on(topic)]


def test_events_cross_a_30s_uplink_outage_in_order(
    tmp_path: Path, mosquitto_factory: Any, mqtt_collector: Any, record_property: Any
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    central = mosquitto_factory(tls=tls, auth=("edge-box1", "uplink-secret"), persistence=True)
    box = mosquitto_factory(
        persistence=True, extra=bridge_conf(central, tls.ca_cert, "edge-box1", "uplink-secret")
    )
    fleet: MqttCollector = mqtt_collector(
        central,
        ["fleet/box1/edge/door/events", "fleet/box1/bridge"],
        client_id="fleet-backend",
        clean_session=False,
        username="edge-box1",
        password="uplink-secret",
        tls_ca=tls.ca_cert,
    )
    local: MqttCollector = mqtt_collector(box, "edge/door/events")
    cfg = write_config(
        tmp_path / "c.yaml", box.port, [comes_and_goes_camera(tmp_path)], **PROMPT_EVENTS
    )
    d = Daemon(cfg, tmp_path / "daemon.log")
    central_topic = "fleet/box1/edge/door/events"
    try:
        fleet.wait_for(lambda ms: len(seqs(fleet, central_topic)) >= 3, 90, "events centrally")
        assert fleet.on("fleet/box1/bridge")[-1].payload == b"1"  # the bridge says it is up
        central.stop()  # the uplink goes
        before = max(seqs(local, "edge/door/events"))
        time.sleep(OUTAGE_S)  # events keep being made and reach the box's broker meanwhile
        during = max(seqs(local, "edge/door/events"))
        assert during >= before + 5, (before, during)
        central.start()
        t_back = time.monotonic()
        fleet.wait_for(lambda ms: max(seqs(fleet, central_topic)) >= during, 60, f"seq {during}")
        record_property("events_made_during_outage", during - before)
        record_property("delivered_centrally_s", round(time.monotonic() - t_back, 2))
    finally:
        d.stop()
    got = seqs(fleet, central_topic)
    firsts = list(dict.fromkeys(got))  # QoS 1: repeats allowed, gaps and reordering not
    assert firsts == list(range(1, max(got) + 1)), got
    record_property("duplicates", len(got) - len(firsts))
    assert "Traceback" not in d.log()
