"""Event policy: sparse start/update/end/alert events from per-frame track snapshots."""

from edge_daemon.policy.events import (
    EVENT_TYPE_ORDER,
    AlertParams,
    EventPolicy,
    PolicyParams,
    normalise_bbox,
)

__all__ = ["EVENT_TYPE_ORDER", "AlertParams", "EventPolicy", "PolicyParams", "normalise_bbox"]
