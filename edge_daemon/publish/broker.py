"""Embedded MQTT broker (amqtt) for a single box without Mosquitto.

amqtt is asyncio-based while the daemon is thread-based, so the broker gets its own
thread running its own event loop; ``start()``/``stop()`` are called from any thread.
It allows anonymous clients and keeps retained messages in memory only. It speaks MQTT
3.1.1, which is what ``MqttPublisher`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """The embedded broker could not start (message says how to fix it)."""


class EmbeddedBroker:
    """amqtt broker bound to ``host:port`` in a background thread.

    >>> broker = EmbeddedBroker("127.0.0.1", 1883)
    >>> broker.start()        # raises BrokerStartError, e.g. when the port is in use
    >>> broker.stop()         # returns within ~2 s
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._started.is_set()

    def _in_use_message(self) -> str:
        return (
            f"cannot start the embedded MQTT broker: port {self.port} on {self.host} is in use "
            "(another broker, e.g. a system mosquitto, running?); stop it, or set "
            "mqtt.embedded_broker.port to a free port (and mqtt.port to the same), or "
            "disable the embedded broker and use the running one"
        )

    def _check_port_free(self) -> None:
        # amqtt logs a full traceback when the bind fails, so test the port first. Same
        # options as asyncio.start_server (SO_REUSEADDR): a port in TIME_WAIT is fine.
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise BrokerStartError(
                f"cannot start the embedded MQTT broker: host {self.host!r} does not resolve "
                f"({exc}); check mqtt.embedded_broker.host"
            ) from None
        for family, kind, proto, _, addr in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(addr)
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise BrokerStartError(self._in_use_message()) from None
                    if exc.errno == errno.EACCES:
                        raise BrokerStartError(
                            f"cannot start the embedded MQTT broker: no permission to bind "
                            f"{self.host}:{self.port} (ports below 1024 need root); set "
                            "mqtt.embedded_broker.port"
                        ) from None
                    raise BrokerStartError(
                        f"cannot start the embedded MQTT broker on {self.host}:{self.port}: "
                        f"{exc}; check mqtt.embedded_broker.host/port"
                    ) from None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only anonymous auth: no $SYS publisher task, no per-packet logging plugins.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    def start(self, timeout: float = 5.0) -> None:
        """Start the broker and wait until it accepts connections.

        Raises BrokerStartError with a how-to-fix message (port in use, bad host, ...).
        """
        if self._thread is not None:
            raise RuntimeError("EmbeddedBroker.start() called twice")
        self._check_port_free()
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="mqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) and self._error is None:
            self.stop()
            raise BrokerStartError(f"embedded MQTT broker did not start within {timeout:.1f} s")
        if self._error is not None:
            self._thread.join(1.0)
            self._thread = None
            err = self._error
            if isinstance(err, BrokerStartError):
                raise err
            if _is_addr_in_use(err):  # lost the race with another process
                raise BrokerStartError(self._in_use_message()) from None
            raise BrokerStartError(f"embedded MQTT broker failed to start: {err}") from err
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    def stop(self, timeout: float = 2.0) -> None:
        """Disconnect all clients and stop; returns within ``timeout`` seconds."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("embedded MQTT broker did not stop within %.1f s", timeout)
        else:
            log.info("embedded MQTT broker stopped")
        self._thread = None

    # ------------------------------------------------------------------ broker thread

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, which re-raises it
            self._error = exc
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(
                        asyncio.wait(pending, timeout=0.5)  # amqtt helper tasks
                    )
            finally:
                loop.close()
                self._started.set()  # release a start() still waiting after a failure

    async def _serve(self) -> None:
        # Imported here: amqtt pulls in websockets/transitions, only needed when used.
        from amqtt.broker import Broker

        class _Broker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
            # amqtt 0.12 bug: on every CONNECT it sends the new client the retained
            # messages matching ANY session's subscription filters (at QoS 0), so clients
            # got retained topics they never subscribed to, or twice. Only the session's
            # own filters may trigger retained delivery.
            async def _publish_retained_messages_for_subscription(
                self, subscription: tuple[str, int], session: Any
            ) -> None:
                owners = self._subscriptions.get(subscription[0], [])
                if any(s.client_id == session.client_id for s, _ in owners):
                    await super()._publish_retained_messages_for_subscription(subscription, session)

        quiet_amqtt_logging()
        self._stop_event = asyncio.Event()
        patchable = hasattr(Broker, "_publish_retained_messages_for_subscription")
        broker = (_Broker if patchable else Broker)(self._config())
        try:
            await broker.start()
        except Exception as exc:
            cause = exc.__cause__ or exc
            if _is_addr_in_use(cause):
                raise BrokerStartError(self._in_use_message()) from None
            raise
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            try:
                # Bounded: stop() promises to return quickly even with stuck clients.
                await asyncio.wait_for(broker.shutdown(), timeout=1.0)
            except Exception as exc:  # noqa: BLE001 - incl. TimeoutError
                log.warning("embedded MQTT broker shutdown incomplete: %s", type(exc).__name__)


class _QuietCancellation(logging.Filter):
    """amqtt logs the cancellation of its own tasks during a shutdown we asked for with a
    full traceback; that is expected, so keep one line at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_amqtt_logging() -> None:
    """amqtt and its state machine library log every connection at INFO; the daemon's
    own log says what matters. Idempotent."""
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker_log = logging.getLogger("amqtt.broker")
    if not any(isinstance(f, _QuietCancellation) for f in broker_log.filters):
        broker_log.addFilter(_QuietCancellation())


def _is_addr_in_use(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def broker_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when an MQTT broker accepts a connection at host:port."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ok = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_connect(_c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        if not getattr(rc, "is_failure", True):
            ok.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=5)
    except OSError:
        return False
    client.loop_start()
    try:
        return ok.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
