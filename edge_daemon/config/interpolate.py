"""``${VAR}``, ``${VAR:-default}`` and ``${credential:NAME}`` substitution in the string
values of the parsed document (after YAML parsing, so a value can never break the YAML
syntax); ``$${`` gives a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from edge_daemon.config.issues import ConfigIssue, Loc, _format_path, _Invalid
from edge_daemon.config.wording import _kind, _yaml_repr
from edge_daemon.config.yamlsource import _MAX_DEPTH, _line_for

_MAX_VALUES = 100_000  # after alias expansion; stops "billion laughs" documents

_REF_RE = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_BODY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)


def _substitute_env(data: Any, env: Mapping[str, str], file: str, root: Node) -> Any:
    """Copy ``data`` with ``${VAR}`` references in string values replaced."""
    issues: list[ConfigIssue] = []
    budget = [_MAX_VALUES]

    def walk(value: Any, loc: Loc) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or len(loc) > _MAX_DEPTH:
            raise _Invalid(
                [
                    ConfigIssue(
                        file,
                        _line_for(root, loc[:1]),
                        _format_path(loc[:1]),
                        "the document is too large or nested too deeply "
                        "(check for recursive or heavily repeated aliases)",
                    )
                ]
            )
        if isinstance(value, str):
            return _substitute_string(value, env, loc, file, root, issues)
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    issues.append(
                        ConfigIssue(
                            file,
                            _line_for(root, loc),
                            _format_path(loc),
                            f"keys must be strings, got {_kind(key)} key {_yaml_repr(key)}; "
                            "quote it if it is meant as a name",
                        )
                    )
            return {k: walk(v, (*loc, _loc_key(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    result = walk(data, ())
    if issues:
        raise _Invalid(issues)
    return result


def _loc_key(key: Any) -> str | int:
    return key if isinstance(key, str | int) else str(key)


_CREDENTIAL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _read_credential(
    name: str, env: Mapping[str, str], loc: Loc, file: str, root: Node, issues: list[ConfigIssue]
) -> str:
    """``${credential:NAME}``: the content of ``$CREDENTIALS_DIRECTORY/NAME``.

    systemd's ``LoadCredential=`` puts secrets there, readable only by the service; the
    secret never has to be in the config file or the environment. One trailing newline
    is stripped (files written with ``echo``).
    """

    def fail(message: str) -> str:
        issues.append(ConfigIssue(file, _line_for(root, loc), _format_path(loc), message))
        return ""

    if not _CREDENTIAL_RE.match(name):
        return fail(
            f"invalid credential name {name!r} in ${{credential:{name}}}: use letters, "
            "digits, '_', '.', '-'"
        )
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return fail(
            f"${{credential:{name}}} needs $CREDENTIALS_DIRECTORY, which systemd sets for "
            "the service (deploy/edge-daemon.service loads each file F of "
            "/etc/edge-daemon/credentials as edge_F); it is not set here. To check an "
            "installed config as the service sees it: /opt/edge-daemon/check-config.sh "
            "/etc/edge-daemon /opt/edge-daemon/venv/bin/edge-daemon"
        )
    path = Path(directory) / name
    try:
        return path.read_text(encoding="utf-8").removesuffix("\n")
    except FileNotFoundError:
        return fail(f"credential {name!r} not found: {path} does not exist")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"credential {name!r} unreadable: {path}: {exc}")


def _substitute_string(
    value: str, env: Mapping[str, str], loc: Loc, file: str, root: Node, issues: list[ConfigIssue]
) -> str:
    if "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body, closed = match.group(1), match.group(2)
        if closed and body.startswith("credential:"):
            return _read_credential(body.removeprefix("credential:"), env, loc, file, root, issues)
        parsed = _BODY_RE.match(body) if closed else None
        if parsed is None:
            issues.append(
                ConfigIssue(
                    file,
                    _line_for(root, loc),
                    _format_path(loc),
                    f"invalid variable reference {match.group(0)!r}: use ${{NAME}} or "
                    "${NAME:-default} (NAME: letters, digits, '_'); write $${ for a literal ${",
                )
            )
            return match.group(0)
        name, default = parsed.group(1), parsed.group(2)
        if default is not None and "${" in default:
            # ${A:-${B}} used to become the literal text ${B} (the match ends at the
            # first '}'): refuse it rather than guess.
            issues.append(
                ConfigIssue(
                    file,
                    _line_for(root, loc),
                    _format_path(loc),
                    f"nested variable reference in the default of ${{{name}:-...}} is not "
                    "supported: give a literal default, or set the variable itself",
                )
            )
            return match.group(0)
        current = env.get(name)
        if default is not None:
            return current if current else default
        if current is None:
            issues.append(
                ConfigIssue(
                    file,
                    _line_for(root, loc),
                    _format_path(loc),
                    f"environment variable {name} is not set (referenced as ${{{name}}}); "
                    f"set it or give a default: ${{{name}:-value}}",
                )
            )
            return match.group(0)
        return current

    return _REF_RE.sub(replace, value)
