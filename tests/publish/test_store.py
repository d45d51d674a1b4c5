"""publish.store: the durable outbox on a real SQLite file in a temp directory: identity
and boot counter, order and seq across reopening, the directory lock, a corrupt file
moved aside, and a disk that refuses writes (a real file-size limit, in a child)."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_daemon.publish.store import DB_NAME, OutboxStore, StateDirError

REPO = Path(__file__).resolve().parents[2]


def fill(store: OutboxStore, camera: str, seqs: range) -> list[int]:
    rows = []
    for seq in seqs:
        row = store.add(camera, seq, f"edge/{camera}/events", b'{"seq": %d}' % seq, 1, 1e9 + seq)
        assert row is not None
        rows.append(row)
    assert store.commit()
    return rows


def test_identity_is_made_once_and_the_boot_counter_rises(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "deeper"  # made if missing
    store = OutboxStore.open(directory)
    first = store.origin
    store.close()
    assert len(first.instance_id) == 32 and first.boot == 1
    store = OutboxStore.open(directory)
    assert store.origin.instance_id == first.instance_id and store.origin.boot == 2
    store.close()


def test_undelivered_events_and_seqs_survive_in_order(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path)
    door = fill(store, "door", range(1, 4))
    fill(store, "yard", range(1, 3))
    fill(store, "door", range(4, 6))
    store.remove(door[:2])  # acknowledged
    assert store.commit()
    store.close()

    store = OutboxStore.open(tmp_path)
    pending = [(e.camera, e.seq) for e in store.pending()]
    assert pending == [("door", 3), ("yard", 1), ("yard", 2), ("door", 4), ("door", 5)]
    first = next(store.pending())
    assert first.payload == b'{"seq": 3}' and first.qos == 1 and first.created == 1e9 + 3
    assert store.last_seqs() == {"door": 5, "yard": 2}
    store.close()


def test_an_uncommitted_write_is_not_there_after_a_reopen(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path)
    fill(store, "door", range(1, 3))
    store.add("door", 3, "edge/door/events", b"{}", 1, 1e9)  # never committed
    store._conn.close()  # the process dies: no commit, no close()
    store._lock.close()
    store = OutboxStore.open(tmp_path)
    assert [e.seq for e in store.pending()] == [1, 2] and store.last_seqs() == {"door": 2}
    store.close()


def test_a_second_daemon_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path)
    with pytest.raises(StateDirError, match="in use by another edge-daemon"):
        OutboxStore.open(tmp_path)
    store.close()
    OutboxStore.open(tmp_path).close()  # the lock went with the first


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateDirError, match=r"set state\.dir to a writable directory"):
        OutboxStore.open(tmp_path / "file" / "state")


def test_a_corrupt_database_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = OutboxStore.open(tmp_path)
    fill(store, "door", range(1, 3))
    old_id = store.origin.instance_id
    store.close()
    db = tmp_path / DB_NAME
    db.write_bytes(b"this is not a database" + bytes(range(256)) * 64)
    with caplog.at_level(logging.ERROR, logger="edge_daemon.publish.store"):
        store = OutboxStore.open(tmp_path)
    assert store.moved_aside is not None and store.moved_aside.exists()
    assert store.moved_aside.read_bytes().startswith(b"this is not a database")
    assert "moved aside" in caplog.text and "new instance_id" in caplog.text
    assert store.origin.instance_id != old_id and store.origin.boot == 1
    assert list(store.pending()) == [] and store.last_seqs() == {}
    fill(store, "door", range(1, 2))  # and it works
    store.close()


DISK_FULL_CHILD = """
import json, resource, sys
from pathlib import Path
from edge_daemon.publish.store import OutboxStore
store = OutboxStore.open(Path(sys.argv[1]))
limit = Path(sys.argv[1], "events.db").stat().st_size + 200_000
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes beyond: EFBIG
results = []
for seq in range(1, 60):
    store.add("door", seq, "edge/door/events", b"x" * 20_000, 1, 1e9)
    results.append(store.commit())
print(json.dumps({"commits": results, "failures": store.write_failures,
                  "problem": store.problem}))
"""


def test_a_disk_that_refuses_writes_is_counted_and_reported_never_raised(
    tmp_path: Path,
) -> None:
    r = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["commits"][0] is True  # below the limit
    assert False in out["commits"] and out["failures"] >= 1, out
    assert "cannot" in out["problem"] and DB_NAME in out["problem"]
    assert "Traceback" not in r.stderr
    assert "free disk space" in r.stderr  # logged once, with what to do


class _FullDiskAt:
    """The store's connection, refusing inserts into the outbox once ``full`` is set
    (as SQLite does on a full disk), everything else passed through."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.full = conn, False

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if self.full and sql.startswith("INSERT INTO outbox"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_a_failed_write_rolls_its_whole_transaction_back(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path)
    fill(store, "door", range(1, 2))  # committed
    flaky = _FullDiskAt(store._conn)
    store._conn = flaky  # type: ignore[assignment]
    assert store.add("door", 2, "edge/door/events", b"{}", 1, 1e9) is not None
    flaky.full = True
    assert store.add("door", 3, "edge/door/events", b"{}", 1, 1e9) is None
    assert store.commit() is False  # seq 2 is not kept either: the caller forgets its row
    flaky.full = False
    assert store.add("door", 4, "edge/door/events", b"{}", 1, 1e9) is not None
    assert store.commit() is True  # and the next transaction is a normal one
    store._conn = flaky.conn
    store.close()
    store = OutboxStore.open(tmp_path)
    assert [e.seq for e in store.pending()] == [1, 4]
    store.close()
