"""`edge-bench`: every subcommand is there, user errors are one line and exit 2, and the
daemon's own command line no longer carries the measuring tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_bench.cli import build_parser, main
from edge_daemon.app.cli import build_parser as daemon_parser

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("pipeline", "report", "soak", "latency", "outbox", "parity")


def _subcommands(parser) -> set[str]:
    return {name for a in parser._subparsers._group_actions for name in a.choices}


def test_every_tool_is_a_subcommand_and_none_is_left_in_the_daemon() -> None:
    assert _subcommands(build_parser()) == set(COMMANDS)
    assert not _subcommands(daemon_parser()) & {"bench", "soak", *COMMANDS}


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge_bench", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0
    assert all(c in out.stdout for c in COMMANDS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pipeline", "--source", "missing.mp4"], "no such file"),
        (["report", "--out", "r.md", "--source", "missing.mp4"], "no such file"),
        (["soak", "--minutes", "1", "--source", "missing.mp4"], "is not a file"),
        (["latency", "missing.onnx", "--repeat", "1"], "does not exist"),
    ],
)
def test_user_errors_are_one_message_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r.md").exists()


def test_report_needs_its_output_file(tmp_path: Path, capsys) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        main(["report", "--source", str(video)])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"), [(["--size", "12x9"], "--size"), (["--sweep", "1,x"], "invalid")]
)
def test_report_refuses_bad_size_and_sweep_before_running(
    flags: list[str], message: str, tmp_path: Path, capsys
) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    assert main(["report", "--out", str(tmp_path / "r.md"), "--source", str(video), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()
