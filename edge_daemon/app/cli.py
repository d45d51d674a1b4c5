"""Command line: ``edge-daemon run|validate-config|watch|history|version``.

Exit codes: 0 success, 1 runtime failure, 2 user error (bad config, model, arguments).
User errors print one clear message per problem and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from edge_daemon import __version__

if TYPE_CHECKING:
    from edge_daemon.config import AppConfig

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("edge_daemon")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: Path) -> AppConfig | None:
    """The config, or None after printing every problem with it (one per line)."""
    from edge_daemon.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_daemon.config import warn_insecure_permissions

    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    warning = warn_insecure_permissions(args.config)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK ({len(cfg.cameras)} camera(s))")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from edge_daemon.ops.native_stderr import NativeStderr

    cfg = _load(args.config)
    if cfg is None:
        return EXIT_USAGE
    # Before logging: the handler must write to the original stderr, not into the pipe.
    native = NativeStderr()
    native.install()
    try:
        return _run(args, cfg)
    finally:
        native.uninstall()


def _run(args: argparse.Namespace, cfg: AppConfig) -> int:
    from edge_daemon.app.daemon import App
    from edge_daemon.classify.model import ModelLoadError
    from edge_daemon.config import warn_insecure_permissions
    from edge_daemon.detect.blazeface import DetectorError
    from edge_daemon.publish import BrokerStartError
    from edge_daemon.publish.store import StateDirError
    from edge_daemon.web.http import HttpStartError

    setup_logging(args.log_level or cfg.log_level)
    warning = warn_insecure_permissions(args.config)
    if warning:
        log.warning("%s", warning)
    app = App(cfg, config_path=args.config)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        app.stop_event.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP, reloading %s", args.config)
        app.request_reload()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        app.start()
    except (
        ModelLoadError,
        DetectorError,
        BrokerStartError,
        HttpStartError,
        StateDirError,
        ValueError,
    ) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_USAGE
    try:
        app.wait()
    finally:
        app.stop()
    log.info("stopped")
    return EXIT_OK


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``...).

    Anyone who can publish to the broker chooses these strings: printed raw, an escape
    sequence could rewrite the operator's terminal (title, colours, cursor, clipboard).
    """
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def state_line(topic: str, text: str) -> tuple[str, str]:
    """A camera's retained state as (what changed means: status and errors, the line to
    print, e.g. ``sample state  online 15.0 fps``)."""
    try:
        st = json.loads(text)
        camera, status = printable(str(st["camera"])), printable(str(st["status"]))
    except (ValueError, KeyError, TypeError):
        line = f"{topic} {printable(text)}"
        return line, line
    errors = " ".join(
        f"({printable(str(st[key]))})" for key in ("error", "analysis_error") if st.get(key)
    )
    fps = f" {float(st['fps']):.1f} fps" if isinstance(st.get("fps"), int | float) else ""
    key = f"{camera} {status} {errors}"
    return key, f"{camera:>12} state  {status}{fps}{' ' + errors if errors else ''}"


def cmd_watch(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port, prefix = args.host, args.port, args.prefix
    if args.config is not None:
        cfg = _load(args.config)
        if cfg is None:
            return EXIT_USAGE
        host, port, prefix = cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.topic_prefix
    topic = f"{prefix}/#" if args.all else f"{prefix}/+/events"
    # Each camera's retained state arrives at once on subscribing: a newcomer sees what
    # runs even before the next event.
    topics = [(topic, 1)] if args.all else [(topic, 1), (f"{prefix}/+/state", 1)]
    done = threading.Event()
    count = 0
    last_state: dict[str, str] = {}

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            print(f"connect refused: {rc}", file=sys.stderr)
            done.set()
            return
        c.subscribe(topics)
        print(
            f"watching {', '.join(t for t, _ in topics)} on {host}:{port} (Ctrl-C to stop)",
            file=sys.stderr,
        )

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        text = msg.payload.decode("utf-8", "replace")
        topic_text = printable(msg.topic)
        if not args.all and not args.json and msg.topic.endswith("/state"):
            key, line = state_line(topic_text, text)
            # The state is re-published as fps moves: a line only when status or error
            # changes (the fps shown is the one at that moment).
            if last_state.get(msg.topic) != key:
                last_state[msg.topic] = key
                print(line, flush=True)
            return  # states are context: --count counts events
        if args.json or not msg.topic.endswith("/events"):
            print(f"{topic_text} {printable(text)}", flush=True)
        else:
            try:
                e = json.loads(text)
                extra = f" alert={printable(str(e['alert']))}" if "alert" in e else ""
                camera, kind = printable(str(e["camera"])), printable(str(e["type"]))
                emotion = printable(str(e["emotion"]))
                print(
                    f"{camera:>12} #{e['seq']:<5} {kind:<6} track {e['track_id']:<4} "
                    f"{emotion:<8} {float(e['confidence']):.2f}{extra}",
                    flush=True,
                )
            except (ValueError, KeyError, TypeError):
                print(f"{topic_text} {printable(text)}", flush=True)
        count += 1
        if args.count and count >= args.count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        print(
            f"cannot connect to {host}:{port}: {exc} (is the daemon/broker running?)",
            file=sys.stderr,
        )
        return EXIT_FAIL
    client.loop_start()
    try:
        done.wait(timeout=args.timeout or None)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
    return EXIT_OK


HISTORY_CSV_COLUMNS = (
    "time", "ts", "camera", "seq", "boot", "type", "track_id", "emotion", "confidence",
    "alert", "duration_s",
)  # fmt: skip


def cmd_history(args: argparse.Namespace) -> int:
    import csv
    from datetime import datetime

    from edge_daemon.app.wiring import state_dir
    from edge_daemon.publish.history import HistoryError, HistoryQuery, parse_time, query

    directory = args.state_dir
    if directory is None:
        cfg = _load(args.config)
        if cfg is None:
            return EXIT_USAGE
        directory = state_dir(cfg, os.environ)
        if directory is None:
            print(
                f"{args.config}: no state directory (state.dir), so no history is kept; "
                "or name one with --state-dir",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        q = HistoryQuery(
            camera=args.camera,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            type=args.type,
            limit=args.limit,
            order="desc",  # the most recent ones, printed oldest first
        )
        events, truncated = query(directory, q)
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    events.reverse()
    if args.format == "json":
        print(json.dumps(events, indent=None))
    elif args.format == "csv":
        out = csv.writer(sys.stdout)
        out.writerow([*HISTORY_CSV_COLUMNS, *(f"score_{k}" for k in _score_names(events))])
        for e in events:
            when = datetime.fromtimestamp(float(e["ts"])).isoformat(timespec="seconds")
            row = [when, *(e.get(k, "") for k in HISTORY_CSV_COLUMNS[1:])]
            row += [e.get("scores", {}).get(k, "") for k in _score_names(events)]
            # The daemon wrote these, but a file is often printed: no raw control bytes.
            out.writerow([printable(v) if isinstance(v, str) else v for v in row])
    else:
        for e in events:
            when = datetime.fromtimestamp(float(e["ts"])).strftime("%Y-%m-%d %H:%M:%S")
            extra = f" alert={printable(str(e['alert']))}" if "alert" in e else ""
            print(
                f"{when} {printable(str(e['camera'])):>12} #{e['seq']:<5} "
                f"{printable(str(e['type'])):<6} track {e['track_id']:<4} "
                f"{printable(str(e['emotion'])):<8} {float(e['confidence']):.2f}{extra}"
            )
    if truncated:
        print(
            f"(more than {args.limit} events matched: these are the latest; raise --limit "
            "or narrow --since/--until)",
            file=sys.stderr,
        )
    return EXIT_OK


def _score_names(events: list[dict[str, Any]]) -> list[str]:
    return list(events[0].get("scores", {})) if events else []


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"edge-daemon {__version__}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-daemon", description="Edge emotion-analytics daemon")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the daemon")
    r.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    r.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate-config", help="check a config file (exit 0 valid, 2 invalid)")
    v.add_argument("-c", "--config", type=Path, default=Path("config.yaml"))
    v.set_defaults(func=cmd_validate)

    w = sub.add_parser(
        "watch", help="subscribe and print each camera's state, then its events as they come"
    )
    w.add_argument("-c", "--config", type=Path, help="take broker and prefix from this config")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=1883)
    w.add_argument("--prefix", default="edge")
    w.add_argument("--all", action="store_true", help="all topics, not only events")
    w.add_argument("--json", action="store_true", help="print raw payloads")
    w.add_argument(
        "--count", type=int, default=0, help="exit after N events (N messages with --all)"
    )
    w.add_argument("--timeout", type=float, default=0, help="exit after T seconds")
    w.set_defaults(func=cmd_watch)

    h = sub.add_parser(
        "history",
        help="print the events kept in the state directory (latest first matched, "
        "printed oldest first)",
    )
    h.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="the daemon's config (for state.dir)",
    )
    h.add_argument("--state-dir", type=Path, help="read this state directory instead")
    h.add_argument("--camera", help="only this camera")
    h.add_argument("--since", help="epoch seconds, ISO 8601 (2026-12-01T14:00) or 30m, 2h, 7d")
    h.add_argument("--until", help="the same forms as --since")
    h.add_argument("--type", choices=["start", "update", "end", "alert"])
    h.add_argument("--limit", type=int, default=100, help="at most this many (1..10000)")
    h.add_argument("--format", choices=["text", "json", "csv"], default="text")
    h.set_defaults(func=cmd_history)

    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc = int(args.func(args))
    if args.command == "run" and argv is None:
        # Everything is stopped, flushed and published at this point. Native libraries
        # (OpenCV/FFmpeg, LiteRT) can take seconds, or hang, in their exit-time
        # destructors while a capture thread is still inside a blocking open(); a
        # supervisor must not wait for that, so skip interpreter finalisation.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
