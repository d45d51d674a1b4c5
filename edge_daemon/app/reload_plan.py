"""What a config reload changes, decided without touching a thread: (running config,
new config) -> which cameras to start, stop and restart, and which sections wait for a
daemon restart. :meth:`edge_daemon.app.App.reload` carries the plan out.

Pure: the plan depends only on the two validated configs, so every rule below is tested
on config values alone (tests/app/test_reload_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_daemon.config import AppConfig

#: Sections a reload cannot apply to a running daemon (the change is logged; restart).
RESTART_SECTIONS = ("mqtt", "model", "metrics", "live_view", "state")


@dataclass(frozen=True)
class ReloadPlan:
    #: The configuration to run from now on: the new file, with the sections in
    #: ``RESTART_SECTIONS`` that changed kept at their running values.
    config: AppConfig
    #: Changed sections that wait for a daemon restart.
    deferred: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    #: Cameras kept by name whose settings changed, or all of them when a setting every
    #: pipeline uses (detector, tracker, events) changed.
    restarted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    log_level_changed: bool = False
    #: Enabled cameras of ``config`` in the file's order (what runs after the reload).
    cameras: tuple[str, ...] = field(default=())


def plan_reload(old: AppConfig, new: AppConfig) -> ReloadPlan:
    """The plan that takes a daemon running ``old`` to ``new`` (see the module doc)."""
    deferred = tuple(s for s in RESTART_SECTIONS if getattr(new, s) != getattr(old, s))
    effective = new.model_copy(update={s: getattr(old, s) for s in deferred})
    pipeline_wide = (effective.detector, effective.tracker, effective.events) != (
        old.detector,
        old.tracker,
        old.events,
    )
    old_cams = {c.name: c for c in old.cameras if c.enabled}
    new_cams = {c.name: c for c in effective.cameras if c.enabled}
    kept = [n for n in new_cams if n in old_cams]
    restarted = tuple(n for n in kept if pipeline_wide or new_cams[n] != old_cams[n])
    return ReloadPlan(
        config=effective,
        deferred=deferred,
        added=tuple(n for n in new_cams if n not in old_cams),
        removed=tuple(n for n in old_cams if n not in new_cams),
        restarted=restarted,
        unchanged=tuple(n for n in kept if n not in restarted),
        log_level_changed=effective.log_level != old.log_level,
        cameras=tuple(new_cams),
    )
