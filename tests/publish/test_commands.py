"""publish.commands: what a command on <prefix>/<camera>/set may say, pure."""

from __future__ import annotations

import pytest

from edge_daemon.publish.commands import (
    MAX_COMMAND_BYTES,
    Command,
    CommandError,
    command_filter,
    parse_command,
)


def test_analysis_on_and_off() -> None:
    assert parse_command("edge", "edge/door/set", b'{"analysis": "off"}') == Command("door", False)
    assert parse_command("a/b", "a/b/yard-2/set", b'{"analysis":"on"}') == Command("yard-2", True)
    assert command_filter("a/b") == "a/b/+/set"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("edge/door/set", b"off", "not JSON"),
        ("edge/door/set", b"\xff\xfe", "not JSON"),
        ("edge/door/set", b'["analysis", "off"]', "not a JSON object"),
        ("edge/door/set", b"{}", "no setting given"),
        ("edge/door/set", b'{"analysis": "of"}', 'analysis must be "on" or "off"'),
        ("edge/door/set", b'{"analysis": true}', 'analysis must be "on" or "off"'),
        ("edge/door/set", b'{"analysis": "off", "fps": 5}', "unknown setting 'fps'"),
        ("edge/door/set", b'{"analysis": "off", "x": "' + b"y" * MAX_COMMAND_BYTES + b'"}',
         "bytes (at most"),
        ("other/door/set", b'{"analysis": "off"}', "is not edge/<camera>/set"),
        ("edge/door/get", b'{"analysis": "off"}', "is not edge/<camera>/set"),
        ("edge/door/x/set", b'{"analysis": "off"}', "is not edge/<camera>/set"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_with_what_is_allowed(
    topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(CommandError, match=reason.replace("(", r"\(").replace("?", r"\?")):
        parse_command("edge", topic, payload)
