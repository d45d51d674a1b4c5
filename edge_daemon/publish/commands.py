"""Commands that arrive on ``<prefix>/<camera>/set`` (``mqtt.commands: true``): parsed and
checked here, pure, before anything acts on them.

A command is a JSON object; the one setting today is ``analysis`` (``"on"`` or
``"off"``: pause or resume the camera's detection and classification without a
restart). Anything else is refused with a reason (counted by the publisher, logged once
per reason), so a typo in an automation is visible instead of silently ignored:
``{"analysis": "of"}`` says what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge_daemon.publish.settings import check_topic_segment

#: Bytes a command may have; a command is a few dozen (a bigger payload is not one).
MAX_COMMAND_BYTES = 1024
ANALYSIS_VALUES = ("on", "off")


@dataclass(frozen=True)
class Command:
    camera: str
    analysis: bool  # True: analyse; False: paused


class CommandError(ValueError):
    """Why a command was refused (one line, for the log and the counters)."""


def command_filter(prefix: str) -> str:
    """The subscription that receives every camera's commands."""
    return f"{prefix}/+/set"


def parse_command(prefix: str, topic: str, payload: bytes) -> Command:
    """The command on ``topic``; raises :class:`CommandError` saying what is wrong."""
    head, sep, rest = topic.partition(prefix + "/")
    camera, _, leaf = rest.partition("/")
    if head or not sep or leaf != "set":
        raise CommandError(f"topic {topic[:120]!r} is not {prefix}/<camera>/set")
    try:
        check_topic_segment(camera)
    except ValueError as exc:
        raise CommandError(f"topic {topic[:120]!r}: {exc}") from None
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(payload)} bytes (at most {MAX_COMMAND_BYTES})")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise CommandError('not JSON: send an object such as {"analysis": "off"}') from None
    if not isinstance(doc, dict):
        raise CommandError('not a JSON object: send e.g. {"analysis": "off"}')
    unknown = sorted(set(doc) - {"analysis"})
    if unknown:
        raise CommandError(f"unknown setting {unknown[0][:40]!r} (allowed: analysis)")
    if "analysis" not in doc:
        raise CommandError('no setting given: send e.g. {"analysis": "off"}')
    value = doc["analysis"]
    if value not in ANALYSIS_VALUES:
        raise CommandError(f'analysis must be "on" or "off", got {str(value)[:40]!r}')
    return Command(camera, value == "on")
