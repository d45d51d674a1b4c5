"""MQTT publisher: one thread owns the paho client, the outbox and the per-camera counters.

Threading contract
    Every public method except ``start``/``stop`` only puts a command on a bounded
    ``queue.Queue`` with ``put_nowait`` and returns; it never blocks on the network. The
    publisher thread is the single owner of the paho client, the outbox, the retained
    state and the per-camera ``seq`` counters. paho callbacks run on that same thread
    because the thread drives paho itself with ``Client.loop()`` (no ``loop_start``), so
    no state is shared with a paho network thread.

Delivery
    Events go to a bounded outbox (``outbox_max``; when full the OLDEST is dropped and
    counted in ``events_dropped``). An event leaves the outbox only when its PUBACK
    (QoS 1) / PUBCOMP (QoS 2) arrives (``on_publish`` with its mid), or as soon as it is
    written for QoS 0. At most ``INFLIGHT_WINDOW`` events are handed to paho at a time.
    If the connection drops, un-acknowledged events are resent in seq order on the next
    connection, so delivery is at-least-once: consumers de-duplicate on (camera, seq).

Refused publishes
    MQTT 5 is spoken where the broker speaks it, because only MQTT
    5 lets a broker say no to one publish: a PUBACK with a failure reason (not authorised,
    topic invalid, quota) counts the event in ``publish_failures`` and
    ``events_dropped``, never in ``events_published``. Under 3.1.1 a broker that denies a
    publish either acknowledges it anyway (Mosquitto) or stays silent: an event without
    an acknowledgement ``PUBACK_TIMEOUT_S`` after it was sent, on a connection that is
    otherwise alive, is counted in ``publish_failures`` and the connection is remade (a
    3.1.1 client may only resend on a new connection).
    ``protocol: auto`` tries 5 first and, until one connection succeeded, switches version
    after an attempt that ended before a CONNACK: at once when the CONNACK says the
    version is unsupported (old Mosquitto), at the next attempt when the broker closed
    the connection or stayed silent (amqtt cannot even parse an MQTT 5 CONNECT that
    carries a will). The version that connected first is kept.

Reconnect
    Our own loop, not paho's ``loop_forever``/``reconnect_delay_set``: every attempt uses a
    FRESH paho client, so paho's internal, unbounded resend queue of the previous
    connection is discarded and the outbox stays the single source of truth (otherwise
    paho and the outbox would both resend the same events). Attempts back off
    exponentially from ``reconnect_min_s`` to ``reconnect_max_s`` (with jitter) forever.
    Each problem (refused, DNS, TLS, auth, ...) is logged once as a WARNING with a hint how
    to fix it when it starts or changes; repeats go to DEBUG.

Retained topics
    ``<prefix>/available`` is ``online`` (retained) on every connect, ``offline`` as the
    last will and on a clean ``stop()``. The latest state of each camera and retained
    ``publish_raw`` messages are re-published on every connect, so a broker that was
    restarted without persistence gets them back.
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import ssl
import threading
import time
import uuid
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_daemon.publish.commands import Command, CommandError, command_filter, parse_command
from edge_daemon.publish.diagnostics import connack_problem, connect_problem, ssl_context
from edge_daemon.publish.outbox import Outbox, Outgoing
from edge_daemon.publish.payloads import (
    EVENT_TYPES,
    Origin,
    dumps,
    event_payload,
    state_payload,
    stats_payload,
)
from edge_daemon.publish.settings import MqttSettings, check_topic_segment
from edge_daemon.publish.store import PRUNE_INTERVAL_S, OutboxStore
from edge_daemon.types import Event

log = logging.getLogger(__name__)
_paho_log = logging.getLogger(__name__ + ".paho")

#: Events handed to paho and not yet acknowledged, at most. Small enough that a reconnect
#: resends little, large enough to keep a LAN link busy.
INFLIGHT_WINDOW = 32
#: Commands waiting for the publisher thread. The thread drains them in microseconds
#: unless it is stuck in a blocking connect; beyond this, submissions are dropped.
COMMAND_QUEUE_MAX = 10_000
#: How long one ``Client.loop()`` waits for network traffic; it bounds the latency of a
#: newly submitted message while connected.
_POLL_S = 0.05
_BATCH = 500  # commands handled between two network polls, so acks keep flowing
#: Seconds an event may wait for its PUBACK/PUBCOMP on a live connection before the
#: connection is treated as broken. Generous: a loaded broker over a slow uplink answers
#: in well under a second, and keepalive already catches a dead TCP link.
PUBACK_TIMEOUT_S = 30.0
#: Commands received and not yet applied by the app (it applies them every main-loop
#: tick, so this is a flood guard, not a working depth).
COMMANDS_MAX = 256


def _paho_to_debug(client: mqtt.Client, userdata: Any, level: int, message: str) -> None:
    _paho_log.debug("%s", message)


_Kind = Literal["event", "state", "stats", "raw", "snapshot", "wake"]


class MqttPublisher:
    """Publishes events, camera state and stats to an MQTT broker from its own thread.

    Topics (``p`` = ``settings.topic_prefix``): ``p/available`` (retained online/offline),
    ``p/<camera>/events`` (QoS ``settings.qos``, not retained), ``p/<camera>/state``
    (retained, QoS 1), ``p/stats`` (QoS 0, dropped while disconnected),
    ``p/<camera>/snapshot`` (JPEG bytes, QoS 0, only when ``publish_images``).
    """

    def __init__(self, settings: MqttSettings, store: OutboxStore | None = None) -> None:
        """``store``: the durable outbox (already open; from :meth:`start` on, the
        publisher thread is its only user); None keeps events in memory only, under a
        fresh ``instance_id`` per run."""
        self._s = settings
        # One id for the whole lifetime: a reconnect then replaces our own half-open old
        # session on the broker instead of running next to it.
        self._client_id = (
            settings.client_id or f"edge-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        )
        self._queue: queue.Queue[tuple[_Kind, Any]] = queue.Queue(COMMAND_QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._stop_deadline = 0.0
        self._connected_event = threading.Event()

        # Counters read by stats() from any thread; written under the lock.
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "events_submitted",
                "events_published",
                "events_dropped",
                "events_invalid",
                "publish_failures",
                "connects",
                "reconnects",
                "connect_failures",
                "events_restored",
                "events_expired",
                "commands_received",
                "commands_refused",
                "snapshots_published",
                "snapshots_refused",
                "messages_dropped",
            ),
            0,
        )
        self._outbox_depth = 0
        self._last_error: str | None = None
        self._queue_full_logged = False  # benign race: only decides whether to log

        # --- owned by the publisher thread only ---
        self._client: mqtt.Client | None = None
        self._connected = False
        self._connack_deadline = 0.0
        self._client_dead = False  # set by on_disconnect / refused CONNACK
        self._refused = False  # CONNACK refused (already reported)
        self._outbox = Outbox(
            settings.outbox_max,
            INFLIGHT_WINDOW,
            settings.outbox_max_bytes,
            settings.outbox_max_age_s,
        )
        self._seq: dict[str, int] = {}
        self._store = store
        self.origin = store.origin if store is not None else Origin(uuid.uuid4().hex, 1)
        self._unsaved_removals: list[int] = []  # store rows to delete at the next commit
        self._uncommitted: list[Outgoing] = []  # stored in the open transaction
        #: Commands received on ``<prefix>/<camera>/set`` (``settings.commands``), for the
        #: app to apply; bounded: a flood of commands is dropped and counted as refused.
        self.commands: queue.Queue[Command] = queue.Queue(COMMANDS_MAX)
        self._command_reasons: set[str] = set()  # refusal reasons already logged
        self._next_expiry = 0.0
        self._next_prune = 0.0
        self._retained: dict[str, tuple[bytes, int]] = {}  # topic -> (payload, qos)
        self._backoff = settings.reconnect_min_s
        self._next_attempt = 0.0
        # MQTT 5 unless configured otherwise or a 3.1.1 broker said so (see module doc).
        self._protocol = mqtt.MQTTv311 if settings.protocol == "3.1.1" else mqtt.MQTTv5
        self._protocol_settled = settings.protocol != "auto"  # True once one connected
        self._problem: str | None = None  # key of the last reported connection problem
        self._was_connected = False
        self._overflowing = False
        if store is not None:
            self._restore(store)

    # ------------------------------------------------------------------ public API

    @property
    def settings(self) -> MqttSettings:
        return self._s

    @property
    def connected_event(self) -> threading.Event:
        """Set while a CONNACK-accepted connection is up (for tests and health checks)."""
        return self._connected_event

    @property
    def alive(self) -> bool:
        """True while the publisher thread runs (False before start and after stop)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the publisher thread; it connects in the background and retries forever."""
        if self._thread is not None:
            raise RuntimeError("MqttPublisher.start() called twice (it cannot be restarted)")
        s = self._s
        log.info(
            "MQTT publisher: broker %s:%d%s%s, client id %s, prefix %r",
            s.host,
            s.port,
            " (TLS)" if s.use_tls else "",
            f", user {s.username!r}" if s.username else "",  # never the password
            self._client_id,
            s.topic_prefix,
        )
        if s.use_tls and s.tls_insecure:
            log.warning(
                "mqtt.tls.insecure is set: the broker certificate and host name are NOT "
                "verified; use it for testing only"
            )
        if not s.use_tls and (s.tls_ca_file or s.tls_cert_file):
            log.warning("mqtt TLS files are set but TLS is off: connecting without TLS")
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Flush what can be flushed, publish retained ``offline``, disconnect cleanly.

        Returns within about ``timeout`` seconds; events still undelivered then are
        logged and lost (the broker keeps nothing for a clean session).
        """
        if self._thread is None or self._stop_requested.is_set():
            if self._thread is not None:
                self._thread.join(timeout)
            return
        self._stop_deadline = time.monotonic() + 0.9 * timeout  # leave room for join()
        self._stop_requested.set()
        self._put("wake", None)  # may be full: the thread also polls the flag
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("MQTT publisher thread did not stop within %.1f s", timeout)

    def publish_event(self, event: Event) -> bool:
        """Queue an event; ``seq`` is assigned by the publisher thread in submission order.

        Returns False (and counts it in ``events_dropped``) if it could not be queued.
        Raises ValueError if the camera id cannot be used in a topic.
        """
        check_topic_segment(event.camera)
        self._count("events_submitted")
        if not self._put("event", event):
            self._count("events_dropped")
            return False
        return True

    def publish_state(self, camera: str, state: dict[str, Any]) -> bool:
        """Queue the retained state of ``camera``; only the latest state per camera is kept.

        ``state`` needs ``status`` (a StreamStatus); see ``state_payload``. Raises
        ValueError/TypeError for an invalid state (checked here, in the caller's thread).
        """
        payload = dumps(state_payload(camera, state))
        return self._put("raw", (self._s.state_topic(camera), payload, True, 1))

    def publish_stats(self, stats: dict[str, Any]) -> bool:
        """Queue a stats document for ``<prefix>/stats`` (QoS 0, not retained)."""
        return self._put("raw", (self._s.stats_topic, dumps(stats_payload(stats)), False, 0))

    def publish_raw(
        self,
        topic_suffix: str,
        payload: bytes | str,
        retain: bool = False,
        qos: int = 0,
        *,
        absolute: bool = False,
    ) -> bool:
        """Queue an arbitrary message on ``<prefix>/<topic_suffix>``.

        ``absolute=True`` uses ``topic_suffix`` as the whole topic (Home Assistant
        discovery lives under ``homeassistant/...``). Retained messages are kept (latest
        per topic) and re-published on every connect; non-retained ones are sent only
        while connected and otherwise dropped (counted in ``messages_dropped``).
        """
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        topic = topic_suffix if absolute else f"{self._s.topic_prefix}/{topic_suffix}"
        if not topic or "+" in topic or "#" in topic or "\0" in topic:
            raise ValueError(f"invalid MQTT topic {topic!r}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        return self._put("raw", (topic, data, retain, qos))

    def publish_snapshot(self, camera: str, kind: str, jpeg: bytes) -> bool:
        """Publish an event's JPEG, retained, on ``<prefix>/<camera>/snapshot/<kind>``
        (``kind`` the event type), only if ``publish_images``.

        Images are personal data, so this refuses (returns False, counts
        ``snapshots_refused``) unless the operator enabled ``mqtt.publish_images``.
        Retained (the latest picture per camera and kind, as Home Assistant's MQTT camera
        expects), QoS 0, never in the event stream; the latest one per topic waits for a
        connection and is published again on every connect.
        """
        if not self._s.publish_images:
            self._count("snapshots_refused")
            return False
        if kind not in EVENT_TYPES:
            raise ValueError(f"snapshot kind {kind!r} is not an event type")
        topic = self._s.snapshot_topic(camera, kind)
        return self._put("snapshot", (topic, bytes(jpeg), camera, kind))

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (safe from any thread).

        ``connected``; ``events_submitted``/``events_published`` (acknowledged, or written
        for QoS 0)/``events_dropped`` (outbox overflow, queue full, after stop)/
        ``events_invalid``; ``outbox`` (events not yet acknowledged); ``queue`` (commands
        not yet handled); ``publish_failures`` (publishes not acknowledged on their
        connection, resent later); ``connects``/``reconnects`` (accepted connections,
        after the first); ``connect_failures`` (attempts that did not end in a
        connection: refused, unreachable, TLS, credentials);
        ``snapshots_published``/``snapshots_refused``; ``messages_dropped`` (non-event
        messages dropped while disconnected);
        ``last_error`` (the current connection problem with a hint, or None);
        ``events_restored`` (undelivered events read back from the store at start),
        ``events_expired`` (dropped for ``outbox_max_age_s``, also in ``events_dropped``),
        ``store_failures``/``store_problem`` (writes the disk refused; the events stayed
        in memory), ``history_pruned`` (history rows deleted for the retention bounds),
        ``durable``, ``instance_id`` and ``boot``; ``commands_received``/
        ``commands_refused`` (``<prefix>/<camera>/set``, when ``commands`` is on).
        """
        store = self._store
        with self._lock:
            out: dict[str, Any] = dict(self._counters)
            out["outbox"] = self._outbox_depth
            out["last_error"] = self._last_error
        out["durable"] = store is not None
        out["store_failures"] = store.write_failures if store is not None else 0
        out["store_problem"] = store.problem if store is not None else None
        out["history_pruned"] = store.history_pruned if store is not None else 0
        out["instance_id"], out["boot"] = self.origin.instance_id, self.origin.boot
        out["connected"] = self._connected_event.is_set()
        out["queue"] = self._queue.qsize()
        return out

    # ------------------------------------------------------------------ helpers (any thread)

    def _put(self, kind: _Kind, item: Any) -> bool:
        if self._stop_requested.is_set() and kind != "wake":
            if kind != "event":  # events are counted by the caller
                self._count("messages_dropped")
            return False
        try:
            self._queue.put_nowait((kind, item))
        except queue.Full:
            if kind == "wake":
                return False
            if kind != "event":  # events are counted by the caller
                self._count("messages_dropped")
            if not self._queue_full_logged:  # once per episode, not per message
                self._queue_full_logged = True
                log.warning(
                    "MQTT publisher queue full (%d): dropping new messages", COMMAND_QUEUE_MAX
                )
            return False
        self._queue_full_logged = False
        return True

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    # ------------------------------------------------------------------ publisher thread

    def _run(self) -> None:
        while True:
            if self._stop_requested.is_set() and self._queue.empty():
                break
            try:
                if self._client is None:
                    wait = max(0.0, self._next_attempt - time.monotonic())
                    self._handle_commands(wait)
                    if time.monotonic() >= self._next_attempt and not self._stop_requested.is_set():
                        self._connect()
                else:
                    self._handle_commands(0.0)
                    self._service_network(_POLL_S)
                self._housekeeping()
                self._commit()
            except Exception:  # a bug, not a network error: keep publishing after a pause
                log.exception("MQTT publisher loop error; reconnecting")
                self._drop_client()
        try:
            self._shutdown()
            self._commit()
        except Exception:
            log.exception("MQTT publisher shutdown error")
        finally:
            self._connected_event.clear()

    def _handle_commands(self, timeout: float) -> None:
        try:
            cmd = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        self._handle(*cmd)
        for _ in range(_BATCH):
            try:
                cmd = self._queue.get_nowait()
            except queue.Empty:
                break
            self._handle(*cmd)
        self._commit()  # stored before the broker can see them
        self._pump()

    def _handle(self, kind: _Kind, item: Any) -> None:
        if kind == "event":
            self._add_event(item)
        elif kind == "raw":
            topic, payload, retain, qos = item
            if retain:
                # Latest wins; it is (re-)published on every connect.
                self._retained.pop(topic, None)  # re-insert: replay in submission order
                self._retained[topic] = (payload, qos)
            if self._connected:
                self._send_now(topic, payload, qos, retain)
            elif not retain:
                self._count("messages_dropped")
        elif kind == "snapshot":
            topic, payload, camera, event_kind = item
            # Like a retained raw message: the latest per topic, sent again on connect.
            self._retained.pop(topic, None)
            self._retained[topic] = (payload, 0)
            if self._connected and self._send_now(topic, payload, 0, True):
                self._count("snapshots_published")
            if event_kind == "alert" and self._store is not None and camera in self._seq:
                # The pipeline queues an event's picture right after the event, so the
                # camera's latest seq is that event's: the alert's picture is kept with it.
                self._store.add_snapshot(camera, self._seq[camera], time.time(), payload)
        # "wake" only interrupts the wait

    def _add_event(self, event: Event) -> None:
        seq = self._seq.get(event.camera, 0) + 1
        try:
            doc = event_payload(event, seq, self.origin)
            payload = dumps(doc)
        except (ValueError, TypeError) as exc:
            # An upstream bug; the seq is not consumed so consumers see no false gap.
            log.error("dropping invalid event from camera %r: %s", event.camera, exc)
            self._count("events_invalid")
            return
        self._seq[event.camera] = seq
        topic = self._s.events_topic(event.camera)
        created = time.time()
        row = None
        if self._store is not None:
            row = self._store.add(
                event.camera,
                seq,
                topic,
                payload,
                self._s.qos,
                created,
                # The published (rounded) ts: a query by a payload's ts finds it.
                (doc["ts"], doc["type"], doc["emotion"]),
            )
        entry, dropped = self._outbox.add(
            event.camera, seq, topic, payload, self._s.qos, created, row
        )
        if row is not None:
            self._uncommitted.append(entry)
        if dropped:
            self._forget(dropped)
            self._count("events_dropped", len(dropped))
            if not self._overflowing:
                log.warning(
                    "MQTT outbox full (%d events or %s bytes): dropping the oldest until the "
                    "broker is reachable again (raise mqtt.outbox_max / outbox_max_bytes to "
                    "buffer more)",
                    self._s.outbox_max,
                    self._s.outbox_max_bytes or "unlimited",
                )
                self._overflowing = True
        self._update_depth()

    def _restore(self, store: OutboxStore) -> None:
        """Read back what the last run left (start-up thread, before the thread runs)."""
        self._seq.update(store.last_seqs())
        restored = dropped = 0
        for ev in store.pending():
            _, lost = self._outbox.add(
                ev.camera, ev.seq, ev.topic, ev.payload, ev.qos, ev.created, ev.id
            )
            restored += 1
            if lost:
                self._forget(lost)
                dropped += len(lost)
        self._count("events_restored", restored)
        if dropped:
            self._count("events_dropped", dropped)
        self._commit()
        self._update_depth()
        if restored:
            log.info(
                "restored %d undelivered event(s) from %s%s",
                restored,
                store.directory,
                f" ({dropped} dropped: over the outbox bounds)" if dropped else "",
            )

    def _forget(self, entries: list[Outgoing]) -> None:
        """Dropped or delivered events: delete their rows at the next commit."""
        self._unsaved_removals.extend(e.row for e in entries if e.row is not None)

    def _housekeeping(self) -> None:
        """Once a second: drop events past the age bound; once a minute: the history's
        retention."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0  # the age bound is days; once a second is plenty
        if self._store is not None and now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_S
            self._store.prune(time.time())
        expired = self._outbox.expire(time.time())
        if expired:
            self._forget(expired)
            self._count("events_expired", len(expired))
            self._count("events_dropped", len(expired))
            log.warning(
                "dropped %d undelivered event(s) older than mqtt.outbox_max_age_s (%g s)",
                len(expired),
                self._s.outbox_max_age_s,
            )
            self._update_depth()

    def _commit(self) -> None:
        store = self._store
        if store is None:
            return
        if self._unsaved_removals:
            store.remove(self._unsaved_removals)
            self._unsaved_removals = []
        if not store.commit():
            # Rolled back: those rows do not exist; never delete another event's row.
            for entry in self._uncommitted:
                entry.row = None
        self._uncommitted = []

    def _update_depth(self) -> None:
        with self._lock:
            self._outbox_depth = len(self._outbox)
        if not self._outbox.full:
            self._overflowing = False

    def _pump(self) -> None:
        """Hand unsent outbox events to paho, oldest first, up to the in-flight window."""
        if not self._connected or self._client is None:
            return
        delivered = 0
        for entry in self._outbox.sendable():
            info = self._client.publish(entry.topic, entry.payload, qos=entry.qos, retain=False)
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                break  # the connection just went; the loop will notice and reconnect
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._count("publish_failures")
                log.debug("publish of %s seq %d failed: %s", entry.camera, entry.seq, info.rc)
                break
            if entry.qos == 0:
                self._outbox.delivered(entry)  # no acknowledgement exists for QoS 0
                self._forget([entry])
                delivered += 1
            else:
                self._outbox.sent(entry, info.mid, time.monotonic())
        if delivered:
            self._count("events_published", delivered)
        self._update_depth()

    def _send_now(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._count("publish_failures")
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    # ------------------------------------------------------------------ connection

    def _make_client(self) -> mqtt.Client:
        s = self._s
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            # The outbox, not the broker session, guarantees delivery: a clean session
            # (3.1.1) or clean start (5, passed to connect()).
            clean_session=True if self._protocol == mqtt.MQTTv311 else None,
            protocol=self._protocol,
            reconnect_on_failure=False,
        )
        # paho logs connection failures at ERROR on every attempt; we report those once
        # ourselves, so its messages are only useful for debugging.
        client.on_log = _paho_to_debug
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(0)  # unlimited: our window limits it
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.use_tls:
            client.tls_set_context(ssl_context(s))
        client.will_set(s.availability_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        s = self._s
        log.debug("connecting to MQTT broker %s:%d", s.host, s.port)
        try:
            client = self._make_client()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failed(
                "tls-files",
                f"cannot load the MQTT TLS files ({exc}): check "
                "mqtt.tls.ca_file / mqtt.tls.cert_file / mqtt.tls.key_file",
            )
            return
        self._client_dead = False
        self._refused = False
        try:
            # Blocking TCP connect + TLS handshake (bounded by connect_timeout_s), then
            # CONNECT is sent; CONNACK arrives in a later loop() call -> _on_connect.
            if self._protocol == mqtt.MQTTv5:
                client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=True)
            else:
                client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except Exception as exc:  # noqa: BLE001 - classified below; never a traceback per retry
            key, msg = connect_problem(exc, s)
            self._failed(key, msg)
            return
        self._client = client
        self._connack_deadline = time.monotonic() + s.connect_timeout_s

    def _failed(self, key: str, message: str) -> None:
        """Report a connection problem (once per change) and schedule the next attempt."""
        with self._lock:
            self._last_error = message
            self._counters["connect_failures"] += 1
        if key != self._problem:
            log.warning("%s (retrying, backoff up to %g s)", message, self._s.reconnect_max_s)
            self._problem = key
        else:
            log.debug("%s", message)
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        # +-20 % jitter so a fleet of devices does not reconnect in lockstep.
        delay = self._backoff * random.uniform(0.8, 1.2)
        self._next_attempt = time.monotonic() + delay
        self._backoff = min(self._backoff * 2, self._s.reconnect_max_s)

    def _service_network(self, timeout: float) -> None:
        assert self._client is not None
        rc = self._client.loop(timeout=timeout)  # callbacks run here, on this thread
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._client_dead:
            self._drop_client()
            return
        oldest = self._outbox.oldest_inflight() if self._connected else None
        if oldest is not None and time.monotonic() - oldest.sent_at > PUBACK_TIMEOUT_S:
            self._failed(
                "no-puback",
                f"MQTT broker {self._s.host}:{self._s.port} acknowledged no event for "
                f"{PUBACK_TIMEOUT_S:g} s (oldest unacknowledged: {oldest.camera} seq "
                f"{oldest.seq}); reconnecting to resend. Does the broker's ACL allow "
                f"publishing to {oldest.topic}?",
            )
            self._discard_client()  # counts the in-flight events in publish_failures
            return
        if not self._connected and time.monotonic() > self._connack_deadline:
            self._failed(
                "no-connack",
                (
                    f"MQTT broker {self._s.host}:{self._s.port} did not answer CONNECT within "
                    f"{self._s.connect_timeout_s:.0f} s: is it an MQTT port? "
                    + ("does it expect TLS (mqtt.tls)?" if not self._s.use_tls else "")
                ),
            )
            self._discard_client()
            self._switch_protocol()
            return
        self._pump()

    def _drop_client(self) -> None:
        """Forget the current client after a lost/refused connection and plan a retry."""
        if self._client is None:
            self._schedule_retry()
            return
        was_connected, refused = self._connected, self._refused
        self._discard_client()
        if was_connected:
            # A working connection broke: report it once, retry soon (backoff was reset).
            self._failed("lost", f"lost connection to MQTT broker {self._s.host}:{self._s.port}")
        elif refused:
            pass  # already reported and scheduled by _on_connect
        else:
            hint = (
                "is this a TLS port? configure mqtt.tls"
                if not self._s.use_tls
                else "check the broker log (does it require a TLS client certificate?)"
            )
            self._failed(
                "closed-before-connack",
                f"MQTT broker {self._s.host}:{self._s.port} closed the connection before "
                f"accepting it: {hint}",
            )
            self._switch_protocol()

    def _switch_protocol(self) -> bool:
        """With ``protocol: auto`` and no connection yet: try the other MQTT version."""
        if self._protocol_settled:
            return False
        self._protocol = mqtt.MQTTv311 if self._protocol == mqtt.MQTTv5 else mqtt.MQTTv5
        log.debug("MQTT: next attempt with protocol %s", self._protocol)
        return True

    def _discard_client(self) -> None:
        client, self._client = self._client, None
        self._mark_disconnected()
        if client is not None:
            client.on_connect = client.on_disconnect = client.on_publish = None
            # Close the socket WITHOUT a DISCONNECT packet: unless stop() already said
            # goodbye, the broker must publish our last will ("offline"). paho's __del__
            # closes its internal wake-up socket pair when the client is collected.
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _mark_disconnected(self) -> None:
        # In-flight events were not acknowledged on this connection: resend on the next.
        requeued = self._outbox.requeue_inflight()
        if requeued:
            self._count("publish_failures", requeued)
        self._connected = False
        self._connected_event.clear()

    # ------------------------------------------------------------------ paho callbacks
    # (run on the publisher thread inside Client.loop())

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if client is not self._client:
            return
        s = self._s
        if reason_code.is_failure:
            name = reason_code.getName()
            if name == "Unsupported protocol version" and self._switch_protocol():
                self._client_dead = True
                self._refused = True
                self._next_attempt = time.monotonic()  # the other version, now
                return
            self._failed(*connack_problem(name, s))
            self._client_dead = True
            self._refused = True
            return
        self._connected = True
        if not self._protocol_settled:
            self._protocol_settled = True
            if self._protocol == mqtt.MQTTv311:
                log.info(
                    "MQTT broker %s:%d speaks MQTT 3.1.1, not 5: a publish it refuses "
                    "shows only as a missing acknowledgement",
                    s.host,
                    s.port,
                )
        self._backoff = s.reconnect_min_s
        self._count("connects")
        if self._was_connected:
            self._count("reconnects")
        self._was_connected = True
        with self._lock:
            self._last_error = None
        if self._problem is not None:
            log.info("connected to MQTT broker %s:%d (recovered)", s.host, s.port)
        else:
            log.info("connected to MQTT broker %s:%d", s.host, s.port)
        self._problem = None
        client.publish(s.availability_topic, "online", qos=1, retain=True)
        if s.commands:
            client.subscribe(command_filter(s.topic_prefix), qos=1)
        for topic, (payload, qos) in self._retained.items():
            client.publish(topic, payload, qos=qos, retain=True)
        self._connected_event.set()
        self._pump()  # resend everything un-acknowledged, in seq order

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if client is not self._client:
            return
        log.debug("MQTT disconnected: %s", reason_code)
        self._client_dead = True

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if client is not self._client:
            return
        entry = self._outbox.acked(mid)
        if entry is None:
            return  # availability/state/raw message, or an event already dropped
        self._forget([entry])
        if reason_code.is_failure:  # MQTT 5 only; the broker will never accept it
            self._count("publish_failures")
            self._count("events_dropped")
            log.warning("broker rejected event %s seq %d: %s", entry.camera, entry.seq, reason_code)
        else:
            self._count("events_published")
        self._update_depth()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if client is not self._client or not self._s.commands:
            return
        try:
            command = parse_command(self._s.topic_prefix, msg.topic, bytes(msg.payload))
        except CommandError as exc:
            self._refuse_command(str(exc))
            return
        try:
            self.commands.put_nowait(command)
        except queue.Full:
            self._refuse_command(f"more than {COMMANDS_MAX} commands waiting")
            return
        self._count("commands_received")

    def _refuse_command(self, reason: str) -> None:
        self._count("commands_refused")
        if reason not in self._command_reasons and len(self._command_reasons) < 64:
            self._command_reasons.add(reason)  # bounded: a flood of variants logs 64 lines
            log.warning("MQTT command refused: %s", reason)
        else:
            log.debug("MQTT command refused: %s", reason)

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        s = self._s
        client = self._client
        if client is not None and self._connected:
            deadline = self._stop_deadline
            # Spend up to half the budget delivering what is still in the outbox.
            flush_until = time.monotonic() + max(0.0, deadline - time.monotonic()) / 2
            while self._outbox and self._connected and time.monotonic() < flush_until:
                self._service_network(0.02)
            if self._client is client and self._connected:
                info = client.publish(s.availability_topic, "offline", qos=1, retain=True)
                while (
                    not info.is_published()
                    and self._client is client
                    and time.monotonic() < deadline
                ):
                    if client.loop(timeout=0.02) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
                # A clean DISCONNECT makes the broker discard the last will.
                client.disconnect()
                end = time.monotonic() + 0.2
                while client.socket() is not None and time.monotonic() < end:
                    client.loop(timeout=0.02)
        self._discard_client()
        if self._outbox:
            log.warning("MQTT publisher stopped with %d undelivered events", len(self._outbox))
        else:
            log.info("MQTT publisher stopped")
