"""Face tracking: link per-frame face observations into tracks with stable ids.

:class:`IouTracker` is pure and deterministic: it never reads a clock (the caller passes
monotonic seconds) and the same timeline of observations always yields the same tracks.
"""

from edge_daemon.track.tracker import IouTracker, TrackerParams, TrackUpdate, iou_matrix

__all__ = ["IouTracker", "TrackUpdate", "TrackerParams", "iou_matrix"]
