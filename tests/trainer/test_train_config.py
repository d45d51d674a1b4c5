"""Training config: YAML + key=value overrides, strict keys and types, saved and reloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import (
    TrainConfig,
    TrainConfigError,
    load_train_config,
    resume_changes,
    save_config,
    to_dict,
)

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"
# The shipped recipe changes as better ones are found: tests read its values, not copies.
EDGEFER2 = load_train_config(CONFIGS / "edgefer2.yaml", [])


@pytest.mark.parametrize("name", ["edgefer", "edgefer2", "seed002"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_train_config(CONFIGS / f"{name}.yaml", [])
    assert cfg.run_name == name
    assert cfg.model.arch == name


def test_yaml_then_overrides(tmp_path: Path) -> None:
    cfg = load_train_config(
        CONFIGS / "edgefer.yaml",
        [
            "optim.epochs=3",
            "optim.lr=1",  # int for a float field: coerced
            "data.limit_train=384",
            "augment.scale=[0.8, 1.2]",
            "model.kwargs={head_dim: 128}",
            f"out_dir={tmp_path}",
            "run_name = tiny",
        ],
    )
    assert cfg.optim.epochs == 3
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.data.limit_train == 384
    assert cfg.augment.scale == (0.8, 1.2)
    assert cfg.model.kwargs == {"head_dim": 128}
    assert cfg.run_dir == tmp_path / "tiny"
    # untouched values come from the YAML file, then the dataclass defaults
    assert cfg.optim.batch_size == 128 and cfg.augment.hflip == 0.5
    assert cfg.data.class_weight_power == 0.3


def test_exponent_floats_without_a_dot() -> None:
    # YAML 1.1 leaves "1e-4" a string; a learning rate is written that way.
    cfg = load_train_config(CONFIGS / "edgefer.yaml", ["optim.lr=1e-4", "optim.weight_decay=5E-5"])
    assert cfg.optim.lr == 1e-4 and cfg.optim.weight_decay == 5e-5
    for bad in ("optim.lr=fast", "optim.lr=inf", "optim.lr=nan"):
        with pytest.raises(TrainConfigError, match=r"optim\.lr: expected float"):
            load_train_config(CONFIGS / "edgefer.yaml", [bad])


def test_defaults_without_file() -> None:
    assert load_train_config(None, []) == TrainConfig()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("epochz=3", "epochz"),
        ("optim.lrr=0.1", "optim.lrr"),
        ("augment.blur=0.5", "augment.blur"),
        ("nosuch.key=1", "nosuch"),
    ],
)
def test_unknown_key_rejected_and_named(override: str, named: str) -> None:
    with pytest.raises(TrainConfigError, match=rf"unknown key\(s\) {named}\b"):
        load_train_config(None, [override])


def test_unknown_key_in_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  epochs: 2\n  momentun: 0.8\n")
    with pytest.raises(TrainConfigError, match=r"optim\.momentun"):
        load_train_config(p, [])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.epochs=abc", "optim.epochs"),
        ("optim.epochs=1.5", "optim.epochs"),
        ("optim.batch_size=true", "optim.batch_size"),
        ("data.dedupe=3", "data.dedupe"),
        ("optim.lr=fast", "optim.lr"),
        ("run_name=123", "run_name"),
        ("augment.scale=[0.8]", "augment.scale"),
        ("augment.scale=0.9", "augment.scale"),
        ("model.kwargs=3", "model.kwargs"),
        ("data=5", "data"),
    ],
)
def test_type_errors_name_the_key(override: str, named: str) -> None:
    with pytest.raises(TrainConfigError, match=rf"^{named}: expected"):
        load_train_config(None, [override])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.schedule=step", "optim.schedule"),  # used to mean a constant lr, silently
        ("optim.plateau_factor=1", "optim.plateau_factor"),
        ("optim.plateau_factor=0", "optim.plateau_factor"),
        ("optim.plateau_patience=-1", "optim.plateau_patience"),
        ("optim.early_stop_patience=-2", "optim.early_stop_patience"),
        ("optim.epochs=0", "optim.epochs"),
        ("optim.batch_size=0", "optim.batch_size"),
        ("optim.min_lr=-1e-5", "optim.min_lr"),
        ("optim.lr=-0.1", "optim.lr"),
    ],
)
def test_senseless_optimiser_values_name_the_key(override: str, named: str) -> None:
    with pytest.raises(TrainConfigError, match=rf"^{named}: "):
        load_train_config(CONFIGS / "edgefer2.yaml", [override])


def test_plateau_tunables_default_to_the_reference_behaviour() -> None:
    # seed002 runs saved before these keys existed resume with the same schedule.
    o = load_train_config(CONFIGS / "seed002.yaml", []).optim
    assert (o.schedule, o.plateau_factor, o.plateau_patience, o.min_lr) == ("plateau", 0.5, 4, 0)
    assert o.early_stop_patience == 0  # the reference's 158 epochs run in full


def test_malformed_overrides() -> None:
    with pytest.raises(TrainConfigError, match="key=value"):
        load_train_config(None, ["optim.epochs"])
    with pytest.raises(TrainConfigError, match="not a section"):
        load_train_config(None, ["data=1", "data.path=x"])


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match=r"nope\.yaml"):
        load_train_config(tmp_path / "nope.yaml", [])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(TrainConfigError, match="top level must be a mapping"):
        load_train_config(tmp_path / "list.yaml", [])
    (tmp_path / "broken.yaml").write_text("optim: {epochs: [1\n")
    with pytest.raises(TrainConfigError, match=r"broken\.yaml"):
        load_train_config(tmp_path / "broken.yaml", [])


def test_resolved_config_round_trip(tmp_path: Path) -> None:
    cfg = load_train_config(
        CONFIGS / "edgefer.yaml",
        ["optim.epochs=2", "augment.scale=[0.85, 1.15]", "model.kwargs={expand: 3}"],
    )
    save_config(cfg, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "epochs: 2" in text and "!!python" not in text  # plain YAML, no tuples
    again = load_train_config(tmp_path / "config.yaml", [])
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)


def test_resume_may_extend_the_schedule_and_change_the_machine() -> None:
    saved = load_train_config(CONFIGS / "edgefer2.yaml", [])
    new = load_train_config(
        CONFIGS / "edgefer2.yaml", ["optim.epochs=120", "threads=1", "data.path=/other/x.npz"]
    )
    changes = resume_changes(saved, new)
    assert changes["optim.epochs"] == (saved.optim.epochs, 120)
    assert set(changes) == {"optim.epochs", "threads", "data.path"}
    assert resume_changes(saved, saved) == {}
    # Early stopping may be switched on for a run in flight (it only ends it sooner).
    stop = load_train_config(CONFIGS / "edgefer2.yaml", ["optim.early_stop_patience=10"])
    assert set(resume_changes(saved, stop)) == {"optim.early_stop_patience"}


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lr=0.001", f"optim.lr ({EDGEFER2.optim.lr} -> 0.001)"),
        ("model.kwargs={stem: 16}", "model.kwargs"),
        ("augment.erase_p=0", "augment.erase_p"),
        ("data.ferplus_blend=0.3", "data.ferplus_blend"),
    ],
)
def test_resume_refuses_a_different_recipe(override: str, named: str) -> None:
    saved = load_train_config(CONFIGS / "edgefer2.yaml", [])
    new = load_train_config(CONFIGS / "edgefer2.yaml", [override])
    with pytest.raises(TrainConfigError, match="differs from the run's saved") as exc:
        resume_changes(saved, new)
    assert named in str(exc.value) and "--resume RUN_DIR" in str(exc.value)


def _fake_run(tmp_path: Path) -> Path:
    """A run directory as train() leaves it, minus real weights: the checks under test
    all happen before the checkpoint or any data is read."""
    cfg = load_train_config(
        CONFIGS / "edgefer2.yaml", [f"out_dir={tmp_path}", "run_name=r", "data.path=/nonexistent"]
    )
    cfg.run_dir.mkdir(parents=True)
    save_config(cfg, cfg.run_dir / "config.yaml")
    (cfg.run_dir / "last.pt").write_bytes(b"")
    return cfg.run_dir


def test_cli_resume_with_a_changed_recipe_is_refused(tmp_path: Path, capsys) -> None:
    from trainer.train import main

    run = _fake_run(tmp_path)
    argv = ["--config", str(CONFIGS / "edgefer2.yaml"), f"out_dir={tmp_path}", "run_name=r"]
    lr = EDGEFER2.optim.lr
    assert main([*argv, "--resume", "optim.lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert f"optim.lr ({lr} -> 0.001)" in err and "Traceback" not in err
    assert f"lr: {lr}" in (run / "config.yaml").read_text()  # saved config untouched


def test_cli_resume_run_dir_uses_the_saved_config(tmp_path: Path, capsys) -> None:
    from trainer.train import main

    run = _fake_run(tmp_path)
    # The saved config (a longer schedule is allowed) gets as far as reading last.pt,
    # which is empty here: refused before any data is read.
    assert main(["--resume", str(run), "optim.epochs=120"]) == 2
    out = capsys.readouterr()
    assert f"resume: optim.epochs {EDGEFER2.optim.epochs} -> 120" in out.out
    assert "last.pt is not a trainer checkpoint" in out.err and "Traceback" not in out.err
    assert main(["--resume", str(run), "optim.lr=0.01"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "nope")]) == 2
    assert "not a run" in capsys.readouterr().err
    assert main(["--config", str(CONFIGS / "edgefer2.yaml"), "--resume", str(run)]) == 2
    assert "drop --config" in capsys.readouterr().err
