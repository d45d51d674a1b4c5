"""Reading the event history the store keeps (``<state dir>/events.db``, table
``history``): one validated query type and one function, shared by the HTTP API
(``/api/events`` on the live view) and ``edge-daemon history``.

Every read opens its own read-only connection (WAL lets it read while the publisher
thread writes), so readers share no state with the daemon and a slow reader never holds
up the writer. Times are wall-clock epoch seconds; :func:`parse_time` also takes ISO
8601 (``2026-12-01T14:00``, local time unless it says otherwise) and durations back from
now (``90s``, ``30m``, ``2h``, ``7d``).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from edge_daemon.publish.payloads import EVENT_TYPES
from edge_daemon.publish.settings import check_topic_segment
from edge_daemon.publish.store import DB_NAME

#: The most events one query returns (the API's and the CLI's ``limit`` ceiling).
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class HistoryError(ValueError):
    """A query that cannot run (bad parameter, no history); the message says why."""


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``1764600000``, ``2026-12-01T14:00[:00][+01:00]`` or ``30m``."""
    text = text.strip()
    now = time.time() if now is None else now
    ago = _AGO.match(text)
    if ago:
        return now - float(ago.group(1)) * _UNIT_S[ago.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise HistoryError(f"time {text!r} is not a usable epoch time")
        return value
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise HistoryError(
            f"time {text!r}: give epoch seconds, ISO 8601 (2026-12-01T14:00) or a duration "
            "back from now (90s, 30m, 2h, 7d)"
        ) from None


@dataclass(frozen=True)
class HistoryQuery:
    camera: str | None = None
    since: float | None = None
    until: float | None = None
    type: str | None = None
    limit: int = DEFAULT_LIMIT
    order: Literal["asc", "desc"] = "desc"

    def __post_init__(self) -> None:
        if self.camera is not None:
            try:
                check_topic_segment(self.camera)
            except ValueError as exc:
                raise HistoryError(f"camera: {exc}") from None
        if self.type is not None and self.type not in EVENT_TYPES:
            raise HistoryError(f"type {self.type!r}: one of {', '.join(EVENT_TYPES)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise HistoryError(f"limit must be 1..{MAX_LIMIT}, got {self.limit}")
        if self.order not in ("asc", "desc"):
            raise HistoryError(f"order must be asc or desc, got {self.order!r}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise HistoryError("since is after until")

    @classmethod
    def from_params(cls, params: dict[str, str], now: float | None = None) -> HistoryQuery:
        """From URL query parameters (``camera since until type limit order``); unknown
        parameters are refused by name, so a typo does not silently widen the query."""
        known = {"camera", "since", "until", "type", "limit", "order", "token"}
        unknown = sorted(set(params) - known)
        if unknown:
            allowed = ", ".join(sorted(known - {"token"}))
            raise HistoryError(f"unknown parameter {unknown[0]!r} (allowed: {allowed})")
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise HistoryError(f"limit must be a number, got {params['limit']!r}") from None
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise HistoryError(f"order must be asc or desc, got {order!r}")
        return cls(
            camera=params.get("camera") or None,
            since=parse_time(params["since"], now) if params.get("since") else None,
            until=parse_time(params["until"], now) if params.get("until") else None,
            type=params.get("type") or None,
            limit=limit,
            order=order,  # type: ignore[arg-type]  # checked just above
        )


def query(state_dir: Path, q: HistoryQuery) -> tuple[list[dict[str, Any]], bool]:
    """The events matching ``q`` (their published documents) and whether more matched
    than ``q.limit``. Raises :class:`HistoryError` when there is no history to read."""
    path = state_dir / DB_NAME
    if not path.is_file():
        raise HistoryError(f"no event history at {path} (is state.dir set, has the daemon run?)")
    where, args = [], []
    for column, op, value in (
        ("camera", "=", q.camera),
        ("ts", ">=", q.since),
        ("ts", "<=", q.until),
        ("type", "=", q.type),
    ):
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(value)
    sql = (
        "SELECT h.payload, s.id IS NOT NULL FROM history h LEFT JOIN snapshots s"
        " ON s.camera = h.camera AND s.seq = h.seq"
        + (" WHERE " + " AND ".join(f"h.{w}" for w in where) if where else "")
        + f" ORDER BY h.ts {q.order.upper()}, h.id {q.order.upper()} LIMIT ?"
    )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from None
    try:
        rows = conn.execute(sql, (*args, q.limit + 1)).fetchall()
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()
    events = []
    for payload, has_picture in rows[: q.limit]:
        doc = json.loads(payload)
        if has_picture:
            doc["picture"] = True  # its alert picture is kept: see picture()
        events.append(doc)
    return events, len(rows) > q.limit


def picture(state_dir: Path, camera: str, seq: int) -> bytes | None:
    """The JPEG kept with alert ``seq`` of ``camera``; None when there is none."""
    path = state_dir / DB_NAME
    if not path.is_file():
        raise HistoryError(f"no event history at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            row = conn.execute(
                "SELECT jpeg FROM snapshots WHERE camera = ? AND seq = ?", (camera, seq)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from None
    return None if row is None else bytes(row[0])
