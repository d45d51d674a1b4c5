"""The events waiting for the broker: a bounded, ordered outbox with an in-flight window.

A pure data structure, owned by the publisher thread and knowing nothing of paho or
sockets, so its rules are tested on their own (tests/publish/test_outbox.py) and a
durable implementation can take its place:

* oldest first: events leave for the broker in the order they were added;
* bounded by count (``maxlen``) and by payload bytes (``max_bytes``): adding beyond
  either drops the OLDEST events (returned, so the caller counts them and deletes them
  from its store); and by age (``max_age_s``): :meth:`Outbox.expire` removes events
  produced longer ago than that (wall-clock), oldest first;
* an event stays until the broker acknowledged it (``acked``), or, at QoS 0, until it
  was handed over (``delivered``); at most ``window`` events are in flight at a time;
* a lost connection puts every in-flight event back to be sent again
  (``requeue_inflight``): at-least-once, so subscribers de-duplicate on ``seq``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(slots=True)
class Outgoing:
    """One event in the outbox. ``created`` is the wall-clock time it was produced;
    ``row`` its row in a durable store (None when not stored); ``mid`` is set while it
    is in flight on the current connection; ``sent_at`` is the monotonic time it was
    handed over."""

    uid: int
    camera: str
    seq: int
    topic: str
    payload: bytes
    qos: int
    created: float = 0.0
    row: int | None = None
    mid: int | None = None
    sent_at: float = 0.0


class Outbox:
    def __init__(
        self,
        maxlen: int,
        window: int,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
    ) -> None:
        if maxlen < 1 or window < 1:
            raise ValueError(f"outbox maxlen and window must be >= 1, got {maxlen}, {window}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"outbox max_bytes must be >= 1, got {max_bytes}")
        if max_age_s is not None and not max_age_s > 0:
            raise ValueError(f"outbox max_age_s must be > 0, got {max_age_s}")
        self.maxlen = maxlen
        self.window = window
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._entries: OrderedDict[int, Outgoing] = OrderedDict()
        self._inflight: dict[int, Outgoing] = {}  # mid -> entry, in sending order
        self._next_uid = 0
        self.bytes = 0  # payload bytes held

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(list(self._entries.values()))

    @property
    def full(self) -> bool:
        """At the count or byte bound: the next add drops the oldest."""
        return len(self._entries) >= self.maxlen or (
            self.max_bytes is not None and self.bytes >= self.max_bytes
        )

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def add(
        self,
        camera: str,
        seq: int,
        topic: str,
        payload: bytes,
        qos: int,
        created: float = 0.0,
        row: int | None = None,
    ) -> tuple[Outgoing, list[Outgoing]]:
        """Append an event; returns it and the oldest ones dropped to make room (a late
        acknowledgement of a dropped in-flight event is then ignored). An event larger
        than ``max_bytes`` on its own is kept (alone): the bound never refuses the newest."""
        dropped = []
        while self._entries and (
            len(self._entries) >= self.maxlen
            or (self.max_bytes is not None and self.bytes + len(payload) > self.max_bytes)
        ):
            dropped.append(self._pop_oldest())
        self._next_uid += 1
        entry = Outgoing(self._next_uid, camera, seq, topic, payload, qos, created, row)
        self._entries[entry.uid] = entry
        self.bytes += len(payload)
        return entry, dropped

    def expire(self, now: float) -> list[Outgoing]:
        """Remove and return the events produced before ``now - max_age_s`` (wall clock),
        oldest first; nothing without an age bound."""
        if self.max_age_s is None:
            return []
        limit = now - self.max_age_s
        expired = []
        while self._entries and next(iter(self._entries.values())).created < limit:
            expired.append(self._pop_oldest())
        return expired

    def _pop_oldest(self) -> Outgoing:
        _, entry = self._entries.popitem(last=False)
        self.bytes -= len(entry.payload)
        if entry.mid is not None:
            self._inflight.pop(entry.mid, None)
        return entry

    def sendable(self) -> Iterator[Outgoing]:
        """Unsent events, oldest first, while the in-flight window has room (mark each
        with ``sent`` or ``delivered`` as it goes out)."""
        for entry in list(self._entries.values()):
            if len(self._inflight) >= self.window:
                return
            if entry.mid is None and entry.uid in self._entries:
                yield entry

    def sent(self, entry: Outgoing, mid: int, now: float) -> None:
        """``entry`` is in flight as message ``mid``, awaiting its acknowledgement."""
        entry.mid, entry.sent_at = mid, now
        self._inflight[mid] = entry

    def delivered(self, entry: Outgoing) -> None:
        """``entry`` needs no acknowledgement (QoS 0): it leaves the outbox."""
        if self._entries.pop(entry.uid, None) is not None:
            self.bytes -= len(entry.payload)

    def acked(self, mid: int) -> Outgoing | None:
        """The broker acknowledged ``mid``: its event leaves the outbox and is returned;
        None for a message that is not an outbox event (or was dropped meanwhile)."""
        entry = self._inflight.pop(mid, None)
        if entry is not None and self._entries.pop(entry.uid, None) is not None:
            self.bytes -= len(entry.payload)
        return entry

    def oldest_inflight(self) -> Outgoing | None:
        return next(iter(self._inflight.values()), None)

    def requeue_inflight(self) -> int:
        """The connection is gone: in-flight events will be sent again; returns how many."""
        n = len(self._inflight)
        for entry in self._inflight.values():
            entry.mid = None
        self._inflight.clear()
        return n
