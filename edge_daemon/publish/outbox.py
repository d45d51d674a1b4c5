"""The events waiting for the broker: a bounded, ordered outbox with an in-flight window.

A pure data structure, owned by the publisher thread and knowing nothing of paho or
sockets, so its rules are tested on their own (tests/publish/test_outbox.py) and a
durable implementation can take its place:

* oldest first: events leave for the broker in the order they were added;
* bounded: adding to a full outbox drops the OLDEST event (the caller counts it);
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
    """One event in the outbox. ``mid`` is set while it is in flight on the current
    connection; ``sent_at`` is the monotonic time it was handed over."""

    uid: int
    camera: str
    seq: int
    topic: str
    payload: bytes
    qos: int
    mid: int | None = None
    sent_at: float = 0.0


class Outbox:
    def __init__(self, maxlen: int, window: int) -> None:
        if maxlen < 1 or window < 1:
            raise ValueError(f"outbox maxlen and window must be >= 1, got {maxlen}, {window}")
        self.maxlen = maxlen
        self.window = window
        self._entries: OrderedDict[int, Outgoing] = OrderedDict()
        self._inflight: dict[int, Outgoing] = {}  # mid -> entry, in sending order
        self._next_uid = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.maxlen

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def add(self, camera: str, seq: int, topic: str, payload: bytes, qos: int) -> Outgoing | None:
        """Append an event; returns the oldest one if it had to be dropped for room (a
        late acknowledgement of a dropped in-flight event is then ignored)."""
        dropped = None
        if self.full:
            _, dropped = self._entries.popitem(last=False)
            if dropped.mid is not None:
                self._inflight.pop(dropped.mid, None)
        self._next_uid += 1
        entry = Outgoing(self._next_uid, camera, seq, topic, payload, qos)
        self._entries[entry.uid] = entry
        return dropped

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
        self._entries.pop(entry.uid, None)

    def acked(self, mid: int) -> Outgoing | None:
        """The broker acknowledged ``mid``: its event leaves the outbox and is returned;
        None for a message that is not an outbox event (or was dropped meanwhile)."""
        entry = self._inflight.pop(mid, None)
        if entry is not None:
            self._entries.pop(entry.uid, None)
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
