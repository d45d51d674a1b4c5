"""What keeping events durable costs: the outbox's store, measured alone.

``edge-bench outbox`` pushes ``--events`` event-sized payloads through the publisher
thread's pattern, for each way of keeping them:

- ``memory``: the in-memory :class:`~edge_daemon.publish.outbox.Outbox` only (the daemon
  without a state directory);
- ``normal`` / ``full``: the same, plus :class:`~edge_daemon.publish.store.OutboxStore`
  with ``state.sync`` normal (survives a daemon crash) or full (fsync at every commit:
  survives a power cut).

Each event is added (outbox row and history row written, the camera's seq updated, as
with the default ``state.history_days``) and later acknowledged (outbox row deleted),
with one commit per ``--batch`` events each way. Batch 1 is the real-time case (an
event now and then: the publisher commits each one alone); larger batches are a backlog
(a burst of tracks, or a broker that comes back). Reported per mode and batch: events
per second the store sustains for add and for acknowledge, and CPU microseconds per
event (process time: what the publisher thread spends, excluding the time it waits for
the disk). Wall time per event depends on the disk (fsync on an SD card is slow); CPU
per event is the cost to the other threads on a small box.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_daemon.publish.outbox import Outbox
from edge_daemon.publish.store import OutboxStore, StoreSync

PAYLOAD_BYTES = 520  # a typical event document (seven scores, bbox, identity)
MODES = ("memory", "normal", "full")


def bench(mode: str, events: int, batch: int, directory: Path) -> dict[str, Any]:
    """One mode at one batch size; a fresh store in ``directory``."""
    box = Outbox(maxlen=events + 1, window=events + 1)
    # With the daemon's default history (state.history_days 30): every event is also a
    # history row.
    store = None if mode == "memory" else OutboxStore.open(directory, _sync(mode), 30.0)
    payload = b"x" * PAYLOAD_BYTES
    entries = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for start in range(0, events, batch):
        for seq in range(start + 1, min(events, start + batch) + 1):
            row = None
            if store is not None:
                now = time.time()
                row = store.add(
                    "cam", seq, "edge/cam/events", payload, 1, now, (now, "start", "happy")
                )
            entry, _ = box.add("cam", seq, "edge/cam/events", payload, 1, time.time(), row)
            box.sent(entry, seq, 0.0)
            entries.append(entry)
        if store is not None:
            store.commit()
    wall1, cpu1 = time.perf_counter(), time.process_time()
    for start in range(0, events, batch):
        rows = []
        for entry in entries[start : start + batch]:
            acked = box.acked(entry.seq)
            assert acked is not None and acked.row == entry.row
            if acked.row is not None:
                rows.append(acked.row)
        if store is not None:
            store.remove(rows)
            store.commit()
    wall2, cpu2 = time.perf_counter(), time.process_time()
    failures = 0 if store is None else store.write_failures
    if store is not None:
        store.close()
    if failures:
        raise RuntimeError(f"{failures} store writes failed in {directory}")
    return {
        "mode": mode,
        "batch": batch,
        "events": events,
        "add_events_per_s": round(events / (wall1 - wall0)),
        "ack_events_per_s": round(events / (wall2 - wall1)),
        "add_cpu_us_per_event": round((cpu1 - cpu0) / events * 1e6, 1),
        "ack_cpu_us_per_event": round((cpu2 - cpu1) / events * 1e6, 1),
    }


def _sync(mode: str) -> StoreSync:
    return "full" if mode == "full" else "normal"


def run(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-outbox-", dir=args.dir) as tmp:
        for batch in args.batch:
            for mode in MODES:
                where = Path(tmp) / f"{mode}-{batch}"
                results.append(bench(mode, args.events, batch, where))
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"{'mode':>7} {'batch':>5} {'add ev/s':>9} {'ack ev/s':>9} {'add CPU us':>10} "
        f"{'ack CPU us':>10}"
    )
    for r in results:
        print(
            f"{r['mode']:>7} {r['batch']:>5} {r['add_events_per_s']:>9} "
            f"{r['ack_events_per_s']:>9} {r['add_cpu_us_per_event']:>10} "
            f"{r['ack_cpu_us_per_event']:>10}"
        )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=5000, help="events per measurement")
    p.add_argument(
        "--batch",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 50],
        help="events per commit, comma-separated (default 1,50)",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where the stores go (the disk to measure; default: the system temp dir)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON list")
