"""A small bounded frame queue whose producer never blocks.

A capture thread must keep draining its camera (an RTSP/USB source that is not read
falls behind and eventually errors out), so when the consumer is slower than the camera
the *oldest* frame is dropped: the consumer always gets the freshest frames and
end-to-end latency stays bounded by ``maxsize`` frames.
"""

from __future__ import annotations

import collections
import threading
import time

from edge_daemon.types import Frame

MAX_QUEUE_SIZE = 8


class FrameQueue:
    """Bounded FIFO of :class:`Frame` with drop-oldest semantics; thread-safe.

    ``put`` never blocks; ``get`` blocks up to ``timeout`` seconds. ``dropped`` can be
    read from any thread.
    """

    def __init__(self, maxsize: int = 2) -> None:
        if not isinstance(maxsize, int) or not 1 <= maxsize <= MAX_QUEUE_SIZE:
            raise ValueError(f"FrameQueue maxsize must be 1..{MAX_QUEUE_SIZE}, got {maxsize!r}")
        self._maxsize = maxsize
        self._items: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._dropped = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def put(self, frame: Frame) -> bool:
        """Append ``frame``; when full, drop the oldest frame first.

        Returns True when a frame was dropped to make room. Never blocks (apart from
        the short internal lock).
        """
        with self._cond:
            dropped = False
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                self._dropped += 1
                dropped = True
            self._items.append(frame)
            self._cond.notify()
            return dropped

    def get(self, timeout: float) -> Frame | None:
        """Oldest queued frame, waiting up to ``timeout`` seconds; None on timeout."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._items.popleft()

    def qsize(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def dropped(self) -> int:
        """Frames discarded because the queue was full."""
        with self._cond:
            return self._dropped
