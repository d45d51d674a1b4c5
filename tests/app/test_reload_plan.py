"""The reload plan on config values alone: no threads, no broker, no cameras."""

from __future__ import annotations

from typing import Any

from edge_daemon.app.reload_plan import RESTART_SECTIONS, plan_reload
from edge_daemon.config import AppConfig


def cfg(*cameras: str, disabled: tuple[str, ...] = (), **sections: Any) -> AppConfig:
    cams = [
        {"name": n, "enabled": n not in disabled, "source": {"type": "sample", "fps": 10}}
        for n in cameras
    ]
    return AppConfig.model_validate({"cameras": cams, **sections})


def test_nothing_changed_plans_nothing() -> None:
    p = plan_reload(cfg("a", "b"), cfg("a", "b"))
    assert (p.added, p.removed, p.restarted, p.deferred) == ((), (), (), ())
    assert p.unchanged == ("a", "b") and p.cameras == ("a", "b")


def test_cameras_added_removed_and_changed_by_name() -> None:
    old = cfg("a", "b", "c")
    new = AppConfig.model_validate(
        {
            "cameras": [
                {"name": "c", "source": {"type": "sample", "fps": 10}},
                {"name": "a", "source": {"type": "sample", "fps": 5}},  # changed
                {"name": "d", "source": {"type": "sample", "fps": 10}},
            ]
        }
    )
    p = plan_reload(old, new)
    assert p.added == ("d",) and p.removed == ("b",) and p.restarted == ("a",)
    assert p.unchanged == ("c",) and p.cameras == ("c", "a", "d")  # the file's order


def test_disabling_a_camera_removes_it_and_enabling_adds_it() -> None:
    p = plan_reload(cfg("a", "b"), cfg("a", "b", disabled=("b",)))
    assert p.removed == ("b",) and p.cameras == ("a",)
    p = plan_reload(cfg("a", "b", disabled=("b",)), cfg("a", "b"))
    assert p.added == ("b",)


def test_a_pipeline_wide_setting_restarts_every_camera() -> None:
    for section in ({"detector": {"min_confidence": 0.7}}, {"tracker": {"min_hits": 3}}):
        p = plan_reload(cfg("a", "b"), cfg("a", "b", **section))
        assert p.restarted == ("a", "b") and p.unchanged == ()


def test_sections_that_need_a_restart_are_deferred_and_kept() -> None:
    old = cfg("a")
    new = cfg("a", mqtt={"port": 1999}, metrics={"enabled": True, "port": 9200})
    p = plan_reload(old, new)
    assert p.deferred == ("mqtt", "metrics") and set(p.deferred) <= set(RESTART_SECTIONS)
    assert p.config.mqtt == old.mqtt and p.config.metrics == old.metrics  # kept running
    assert p.restarted == ()  # no camera needs to restart for them


def test_log_level_applies_live() -> None:
    p = plan_reload(cfg("a"), cfg("a", log_level="debug"))
    assert p.log_level_changed and p.config.log_level == "debug" and p.deferred == ()
