"""An in-process :class:`~edge_daemon.app.daemon.App` on a config written to a temp file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from edge_daemon.app.daemon import App
from edge_daemon.config import load_config
from edge_daemon.ops.systemd import SystemdNotifier
from tests.support.net import free_port


def sample_camera(name: str, fps: float = 10, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": {"type": "sample", "fps": fps, **extra}}


def app_config(broker_port: int, cameras: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "stats_interval_s": 1},
        "cameras": cameras,
        **sections,
    }


@contextmanager
def running_app(
    path: Path, data: dict[str, Any], notifier: SystemdNotifier | None = None
) -> Iterator[App]:
    """Write ``data`` to ``path``, start an App on it, stop it at the end."""
    path.write_text(yaml.safe_dump(data))
    app = App(load_config(path), config_path=path, notifier=notifier or SystemdNotifier(env={}))
    app.start()
    try:
        yield app
    finally:
        app.stop()


@contextmanager
def app_serving(
    path: Path,
    broker_port: int,
    section: str,
    cameras: list[dict[str, Any]] | None = None,
    sections: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[tuple[App, str]]:
    """An App whose ``section`` HTTP server (``metrics`` or ``live_view``) is enabled on a
    free port with ``settings`` (other config ``sections`` as given): yields the app and
    the server's base URL."""
    port = free_port()
    data = app_config(
        broker_port,
        cameras if cameras is not None else [sample_camera("door", fps=10)],
        **(sections or {}),
        **{section: {"enabled": True, "port": port, **settings}},
    )
    with running_app(path, data) as app:
        yield app, f"http://127.0.0.1:{port}"
