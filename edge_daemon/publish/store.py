"""The durable side of the outbox: SQLite (standard library, WAL) in the state directory.

What it keeps, in ``<state dir>/events.db``:

* every event not yet acknowledged by the broker, with its topic, payload, QoS and the
  wall-clock time it was produced (rows in insertion order, so per-camera order
  survives a restart);
* the history: every event produced, delivered or not, for ``state.history_days``
  and at most ``state.history_max_mb`` (oldest deleted first, counted), indexed by
  camera and time, read by :mod:`edge_daemon.publish.history` (the HTTP API and
  ``edge-daemon history``) through their own read-only connections; with
  ``mqtt.publish_images``, the picture of each alert too, under the same bounds;
* the last ``seq`` of every camera, so numbering continues after a restart;
* the daemon's identity: an ``instance_id`` made once and a ``boot`` counter raised at
  every start, which every event carries so subscribers de-duplicate on
  ``(instance_id, camera, seq)`` and key tracks on ``(instance_id, boot, camera,
  track_id)``.

Ownership: :meth:`OutboxStore.open` runs on the thread that starts the daemon (so a
locked, unwritable or corrupt state directory is reported at start-up, before anything
runs); from the publisher thread's start on, that thread is the only user of the
connection (``check_same_thread=False`` only permits the hand-over).

Durability: a write is a row in an open transaction; :meth:`commit` ends it. The
publisher commits once per batch of commands and before it sends anything, so an event
is committed before the broker can see it, and an acknowledgement deleted in a lost
transaction only makes the event go out again (at-least-once, never lost). ``sync:
full`` (the default) also survives a power cut (SQLite's ``synchronous=FULL``: fsync at
every commit); ``normal`` survives a crash of the daemon but may lose the last commits
on power loss, for less disk wear on SD cards.

Failures never stop the daemon: a write that fails (disk full, I/O error, a file size
limit) is counted, reported once through ``problem``, and the events stay in the
memory outbox (delivered if the broker is reachable, lost only if the daemon also
stops). A database that cannot be read is moved aside (``events.db.corrupt-<time>``)
with an error in the log, and a fresh one starts with a new ``instance_id``, because
``seq`` numbering starts again. A second daemon on the same directory is refused: the
first holds an exclusive ``flock`` on ``<state dir>/lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from edge_daemon.publish.payloads import Origin

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "events.db"
LOCK_NAME = "lock"
#: How long a commit may wait for SQLite's own file lock (only this process uses the
#: file; a wait means a stuck disk, not contention).
BUSY_TIMEOUT_S = 5.0

StoreSync = Literal["full", "normal"]


class StateDirError(Exception):
    """The state directory cannot be used (another daemon holds it, it is not writable);
    the message says what to do."""


@dataclass(frozen=True)
class StoredEvent:
    """A row of the outbox as it comes back after a restart."""

    id: int
    camera: str
    seq: int
    topic: str
    payload: bytes
    qos: int
    created: float  # wall-clock seconds


_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL, seq INTEGER NOT NULL,"
    " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seqs (camera TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL, seq INTEGER NOT NULL,"
    " boot INTEGER NOT NULL, ts REAL NOT NULL, type TEXT NOT NULL, emotion TEXT NOT NULL,"
    " payload TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS history_camera_ts ON history (camera, ts)",
    "CREATE INDEX IF NOT EXISTS history_ts ON history (ts)",
    "CREATE TABLE IF NOT EXISTS snapshots ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL, seq INTEGER NOT NULL,"
    " ts REAL NOT NULL, jpeg BLOB NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS snapshots_camera_seq ON snapshots (camera, seq)",
)
#: A history row's fixed columns and index entries, roughly, for the size bound.
ROW_OVERHEAD_BYTES = 64
#: Seconds between two retention passes over the history (deletes are cheap; once a
#: minute keeps the bound within a minute's worth of events).
PRUNE_INTERVAL_S = 60.0


class OutboxStore:
    """One open state directory: its lock, identity and outbox database."""

    def __init__(
        self, directory: Path, conn: sqlite3.Connection, lock: IO[bytes], origin: Origin
    ) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self.origin = origin
        self.history_days = 0.0  # 0 = keep no history (set by open())
        self.history_max_bytes = 0
        self.history_pruned = 0  # history rows deleted for the retention bounds
        # Size and rows of the history (payload bytes plus ROW_OVERHEAD_BYTES a row, plus
        # the pictures), kept up to date by the writes so that the retention pass does
        # not scan the whole table every minute; None = to be measured (at the first
        # pass, and again after a rolled-back transaction).
        self._history_size: tuple[int, int] | None = None
        self._conn = conn
        self._lock = lock
        self._dirty = False
        self._txn_failed = False  # a write in the open transaction failed
        self.write_failures = 0  # writes or commits that failed (disk full, I/O error)
        self.problem: str | None = None  # the current write problem, for stats and logs
        self.moved_aside: Path | None = None  # where an unreadable database went

    # -- opening (start-up thread) ----------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        sync: StoreSync = "full",
        history_days: float = 0.0,
        history_max_bytes: int = 256 * 1024 * 1024,
    ) -> OutboxStore:
        """Lock ``directory`` (made if missing), open or create its database, raise the
        boot counter. ``history_days`` 0 keeps no history. Raises
        :class:`StateDirError` with a fix in the message."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock = open(directory / LOCK_NAME, "ab")  # noqa: SIM115 - held for the lifetime
        except OSError as exc:
            raise StateDirError(
                f"cannot use the state directory {directory}: {exc.strerror or exc}; "
                "set state.dir to a writable directory"
            ) from None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StateDirError(
                f"the state directory {directory} is in use by another edge-daemon "
                "(it holds the lock file): stop that one, or give this one its own state.dir"
            ) from None
        try:
            conn, moved = _connect(directory / DB_NAME, sync)
            origin = _next_boot(conn)
        except sqlite3.Error as exc:
            lock.close()
            raise StateDirError(
                f"cannot open the event store {directory / DB_NAME}: {exc}; check the "
                "disk and the directory's permissions"
            ) from None
        store = cls(directory, conn, lock, origin)
        store.moved_aside = moved
        store.history_days = history_days
        store.history_max_bytes = history_max_bytes
        return store

    # -- reading at start ----------------------------------------------------------

    def pending(self) -> Iterator[StoredEvent]:
        """Unacknowledged events, in the order they were produced."""
        rows = self._conn.execute(
            "SELECT id, camera, seq, topic, payload, qos, created FROM outbox ORDER BY id"
        )
        for row in rows:
            yield StoredEvent(row[0], row[1], row[2], row[3], bytes(row[4]), row[5], row[6])

    def last_seqs(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT camera, seq FROM seqs").fetchall())

    # -- writing (publisher thread) --------------------------------------------------

    def add(
        self,
        camera: str,
        seq: int,
        topic: str,
        payload: bytes,
        qos: int,
        created: float,
        kind: tuple[float, str, str] | None = None,
    ) -> int | None:
        """Store an event (in the open transaction); its row id, None if the write failed.
        ``kind`` = (event ts, type, emotion) also records it in the history (when kept)."""
        try:
            cur = self._conn.execute(
                "INSERT INTO outbox (camera, seq, topic, payload, qos, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (camera, seq, topic, payload, qos, created),
            )
            self._conn.execute(
                "INSERT INTO seqs (camera, seq) VALUES (?, ?) "
                "ON CONFLICT(camera) DO UPDATE SET seq = excluded.seq",
                (camera, seq),
            )
            if kind is not None and self.history_days > 0:
                self._conn.execute(
                    "INSERT INTO history (camera, seq, boot, ts, type, emotion, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (camera, seq, self.origin.boot, *kind, payload.decode()),
                )
                self._grow(len(payload) + ROW_OVERHEAD_BYTES, 1)
        except sqlite3.Error as exc:
            self._failed("store an event", exc)
            return None
        self._dirty = True
        return cur.lastrowid

    def remove(self, row_ids: list[int]) -> None:
        """Delete acknowledged or dropped events (in the open transaction)."""
        if not row_ids:
            return
        try:
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in row_ids])
        except sqlite3.Error as exc:
            self._failed("delete delivered events", exc)
            return
        self._dirty = True

    def add_snapshot(self, camera: str, seq: int, ts: float, jpeg: bytes) -> None:
        """Keep an alert's picture with the history (in the open transaction)."""
        if self.history_days <= 0:
            return
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots (camera, seq, ts, jpeg) VALUES (?, ?, ?, ?)",
                (camera, seq, ts, jpeg),
            )
        except sqlite3.Error as exc:
            self._failed("store an alert picture", exc)
            return
        self._grow(len(jpeg), 0)
        self._dirty = True

    def _grow(self, size: int, rows: int) -> None:
        if self._history_size is not None:
            self._history_size = (self._history_size[0] + size, self._history_size[1] + rows)

    def _measured_history(self) -> tuple[int, int]:
        size, rows = self._conn.execute(
            "SELECT COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0) + COUNT(*) * ?, COUNT(*) "
            "FROM history",
            (ROW_OVERHEAD_BYTES,),
        ).fetchone()
        size += self._conn.execute(
            "SELECT COALESCE(SUM(LENGTH(jpeg)), 0) FROM snapshots"
        ).fetchone()[0]
        return int(size), int(rows)

    def _delete_history(self, where: str, args: tuple[object, ...]) -> int:
        """Delete history rows (and the pictures left without their event); rows deleted.
        The tracked size shrinks by what the deletes report back."""
        rows = self._conn.execute(
            f"DELETE FROM history WHERE {where} RETURNING LENGTH(CAST(payload AS BLOB))", args
        ).fetchall()
        pictures = self._conn.execute(
            "DELETE FROM snapshots WHERE NOT EXISTS (SELECT 1 FROM history h "
            "WHERE h.camera = snapshots.camera AND h.seq = snapshots.seq) "
            "RETURNING LENGTH(jpeg)"
        ).fetchall()
        freed = sum(r[0] + ROW_OVERHEAD_BYTES for r in rows) + sum(p[0] for p in pictures)
        self._grow(-freed, -len(rows))
        return len(rows)

    def prune(self, now: float) -> int:
        """Apply the history's retention (age, then size: oldest first); rows deleted.
        Pictures go with their events. Part of the open transaction, like every write."""
        if self.history_days <= 0:
            return 0
        deleted = 0
        try:
            if self._history_size is None:
                self._history_size = self._measured_history()
            cutoff = now - self.history_days * 86400.0
            deleted += self._delete_history("ts < ?", (cutoff,))
            size, n = self._history_size
            if size > self.history_max_bytes and n:
                # Down to 90 % of the bound, so the next events do not prune again at once.
                excess = int(n * (1 - 0.9 * self.history_max_bytes / size)) + 1
                deleted += self._delete_history(
                    "id IN (SELECT id FROM history ORDER BY id LIMIT ?)", (excess,)
                )
        except sqlite3.Error as exc:
            self._failed("apply the history retention", exc)
            return 0
        if deleted:
            self._dirty = True
            self.history_pruned += deleted
        return deleted

    def commit(self) -> bool:
        """End the open transaction; False (counted, reported) when the disk refused it
        or any write in it failed. Then it is rolled back as a whole (SQLite may already
        have undone part of it): those events stay only in memory, and the caller must
        forget their row ids, which a later insert may reuse."""
        if not self._dirty and not self._txn_failed:
            return True
        self._dirty = False
        if self._txn_failed:
            self._txn_failed = False
            self._history_size = None  # what the rollback undid is not known here
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            return False
        try:
            self._conn.commit()
        except sqlite3.Error as exc:
            self._failed("commit", exc)
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            self._txn_failed = False  # rolled back: the next transaction starts clean
            self._history_size = None
            return False
        if self.problem is not None:
            log.info("event store %s writable again", self.path)
            self.problem = None
        return True

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.commit()
            self._conn.close()
        self._lock.close()  # releases the flock

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        self.write_failures += 1
        self._txn_failed = True
        problem = f"event store {self.path}: cannot {what}: {exc}"
        if problem != self.problem:
            log.error(
                "%s; events are kept in memory only until it is writable again (free disk "
                "space under %s)",
                problem,
                self.directory,
            )
        self.problem = problem


def _connect(path: Path, sync: StoreSync) -> tuple[sqlite3.Connection, Path | None]:
    """Open (or create) the database; an unreadable one is moved aside first."""
    moved = None
    try:
        conn = _open_checked(path, sync)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and not _looks_corrupt(exc):
            raise
        moved = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                os.replace(src, Path(str(moved) + suffix))
        log.error(
            "event store %s is unreadable (%s): moved aside to %s; starting a fresh one "
            "with a new instance_id (events it held are not delivered, seq starts at 1)",
            path,
            exc,
            moved,
        )
        conn = _open_checked(path, sync)
    return conn, moved


def _looks_corrupt(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _open_checked(path: Path, sync: StoreSync) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level="DEFERRED"
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({verdict})")
        for stmt in _DDL:
            conn.execute(stmt)
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(version[0]) > SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"the database was written by a newer edge-daemon (schema {version[0]}, "
                f"this one reads {SCHEMA_VERSION})"
            )
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def _next_boot(conn: sqlite3.Connection) -> Origin:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    instance_id = meta.get("instance_id") or uuid.uuid4().hex
    boot = int(meta.get("boot", "0")) + 1
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [("instance_id", instance_id), ("boot", str(boot))],
    )
    conn.commit()
    return Origin(instance_id, boot)
