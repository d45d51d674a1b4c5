"""deploy/: the systemd unit passes systemd-analyze, and install.sh/uninstall.sh work
(idempotently) into a prefix, producing a daemon that runs."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # not the test venv's
UNIT = REPO / "deploy" / "edge-daemon.service"
ANALYZE = shutil.which("systemd-analyze")


def unit_directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(unit: Path) -> None:
    """systemd-analyze verify prints problems (unknown values, missing binaries) to
    stderr, sometimes with exit code 0: both must be clean."""
    assert ANALYZE is not None
    r = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if unit.name in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_unit_is_notify_hardened_and_uses_credentials() -> None:
    d = unit_directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["WatchdogSec"] == ["30"]
    assert d["Restart"] == ["on-failure"] and d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["User"] == ["edge-daemon"] and d["SupplementaryGroups"] == ["video"]
    assert d["DeviceAllow"] == ["char-video4linux rw"] and d["DevicePolicy"] == ["closed"]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"]
    assert d["LoadCredential"] == ["edge:@CONFIG_DIR@/credentials"]
    # Bounds: a leak ends in a restart of this service, not the OOM killer elsewhere.
    assert d["MemoryMax"] == ["1536M"] and d["TasksMax"] == ["512"]
    assert d["LimitNOFILE"] == ["4096"]
    assert d["StateDirectory"] == ["edge-daemon"] and d["StateDirectoryMode"] == ["0700"]
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert d["SystemCallErrorNumber"] == ["EPERM"]


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_exposure_is_low(tmp_path: Path) -> None:
    unit = tmp_path / "edge-daemon.service"
    unit.write_text(UNIT.read_text().replace("@VENV@", "/opt/v").replace("@CONFIG_DIR@", "/etc/e"))
    r = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True
    )
    if "--offline" in r.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    exposure = float(
        r.stdout.rsplit("Overall exposure level for edge-daemon.service:", 1)[1].split()[0]
    )
    # 1.9 before the bounds and the extra hardening; systemd calls up to 2.0 "OK".
    assert exposure <= 1.7, r.stdout[-3000:]


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "edge-daemon").exists()
    text = UNIT.read_text().replace("@VENV@", str(venv_bin.parent))
    unit = tmp_path / "edge-daemon.service"
    unit.write_text(text.replace("@CONFIG_DIR@", str(tmp_path)))
    verify(unit)
    # The check can fail: a typo in a value is reported.
    bad = tmp_path / "bad.service"
    bad.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    with pytest.raises(AssertionError, match="notifyy"):
        verify(bad)


def with_credential_password(config_text: str) -> str:
    return config_text.replace(
        "  username: null\n  password: null\n",
        "  username: edge\n  password: ${credential:edge_mqtt_password}\n",
        1,
    )


def test_check_config_sees_the_credentials_the_unit_hands_over(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    (config_dir / "credentials").mkdir(parents=True)
    text = with_credential_password((REPO / "config.yaml").read_text())
    assert "${credential:edge_mqtt_password}" in text
    (config_dir / "config.yaml").write_text(text)
    binary = Path(sys.executable).parent / "edge-daemon"
    check = REPO / "deploy" / "check-config.sh"
    r = run("bash", check, config_dir, binary)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "credential 'edge_mqtt_password' not found" in r.stdout + r.stderr
    assert f"hint: ${{credential:edge_NAME}} reads {config_dir}/credentials/NAME" in r.stderr
    (config_dir / "credentials" / "mqtt_password").write_text("s3cret\n")
    r = run("bash", check, config_dir, binary)
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
    assert "s3cret" not in r.stdout + r.stderr


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=900
    )


@pytest.mark.slow
def test_install_upgrade_uninstall_into_a_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "root"
    r = run("bash", REPO / "deploy" / "install.sh", "--prefix", prefix, "--python", BASE_PYTHON)
    assert r.returncode == 0, r.stdout + r.stderr
    venv = prefix / "opt/edge-daemon/venv"
    config = prefix / "etc/edge-daemon/config.yaml"
    unit = prefix / "etc/systemd/system/edge-daemon.service"
    creds = prefix / "etc/edge-daemon/credentials"
    assert "wrote" in r.stdout and ": OK" in r.stdout  # the config was validated
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    d = unit_directives(unit.read_text())
    assert d["ExecStart"] == [f"{venv}/bin/edge-daemon run -c {config}"]
    assert d["LoadCredential"] == [f"edge:{creds}"]
    if ANALYZE:
        verify(unit)
    # The installed daemon is a real, separate installation that runs.
    v = run(venv / "bin/edge-daemon", "version")
    assert v.returncode == 0 and "edge-daemon" in v.stdout
    assert run(venv / "bin/python", "-c", "import edge_daemon, ai_edge_litert").returncode == 0

    # Upgrade in place: the user's config is kept, the unit rewritten. The config uses a
    # systemd credential, as the README advises; before, the upgrade aborted at the
    # validation (no $CREDENTIALS_DIRECTORY outside systemd).
    config.write_text(with_credential_password(config.read_text()) + "# edited by the user\n")
    (creds / "mqtt_password").write_text("s3cret\n")
    unit.write_text("stale")
    r = run("bash", REPO / "deploy" / "install.sh", "--prefix", prefix, "--python", BASE_PYTHON)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kept existing" in r.stdout and ": OK" in r.stdout
    assert config.read_text().endswith("# edited by the user\n")
    assert unit.read_text().startswith("# systemd unit")

    r = run("bash", REPO / "deploy" / "uninstall.sh", "--prefix", prefix)
    assert r.returncode == 0, r.stderr
    assert not venv.exists() and not unit.exists() and config.exists()
    state = prefix / "var/lib/edge-daemon"  # what systemd's StateDirectory= would make
    (state / "events.db").parent.mkdir(parents=True)
    (state / "events.db").write_bytes(b"events")
    assert run("bash", REPO / "deploy" / "uninstall.sh", "--prefix", prefix).returncode == 0
    assert (state / "events.db").exists()  # kept without --purge
    r = run("bash", REPO / "deploy" / "uninstall.sh", "--prefix", prefix, "--purge")
    assert r.returncode == 0 and not config.parent.exists() and not state.exists()


def test_install_rejects_unknown_options_and_non_root_without_prefix() -> None:
    r = run("bash", REPO / "deploy" / "install.sh", "--frobnicate")
    assert r.returncode == 2 and "unknown option --frobnicate" in r.stderr
    if os.geteuid() != 0:
        r = run("bash", REPO / "deploy" / "install.sh")
        assert r.returncode == 2 and "run as root" in r.stderr
