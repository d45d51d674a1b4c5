"""Wording: a pydantic ``ValidationError`` becomes :class:`ConfigIssue` values that say
what is wrong *and* what is allowed, each at the line of the key concerned, at most
:data:`MAX_ISSUES` of them.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from yaml.nodes import Node

from edge_daemon.config.issues import ConfigIssue, Loc, _format_path
from edge_daemon.config.schema import NAME_PATTERN, AppConfig, redact_url
from edge_daemon.config.yamlsource import _line_for

#: Problems reported per file: past this a file is not a config with a few typos, and
#: ten thousand lines of errors help nobody.
MAX_ISSUES = 50


def _issues_from_validation(exc: ValidationError, file: str, root: Node) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[ConfigIssue] = set()
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "config_rule":
            loc = (*loc, *ctx.get("sub_loc", ()))
        target = _resolve(loc)
        parts = list(target.parts)
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            parts.append(str(ctx.get("discriminator", "type")).strip("'\""))
        path = _format_path(tuple(parts))
        message = _message(err, target, tuple(parts))
        issue = ConfigIssue(file, _line_for(root, tuple(parts)), path, message)
        if issue not in seen:  # a set: `in issues` made 10,000 errors a 30 s report
            seen.add(issue)
            issues.append(issue)
    issues.sort(key=lambda issue: issue.line or 0)
    if len(issues) > MAX_ISSUES:
        more = len(issues) - MAX_ISSUES
        issues = issues[:MAX_ISSUES]
        issues.append(ConfigIssue(file, None, "", f"... and {more} more problems not shown"))
    return issues


@dataclass
class _Target:
    """Where a pydantic error location points in the schema."""

    parts: tuple[str | int, ...]  # the loc without discriminator tags
    owner: type[BaseModel] | None  # model owning the last part
    field: FieldInfo | None  # that field, when the last part is a known field
    final: Any  # the type at the location (None when unknown)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional from a type."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return tp
        else:
            return tp


def _union_members(tp: Any) -> dict[str, Any]:
    """Members of a union keyed by what pydantic puts in ``loc`` for them."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    members: dict[str, Any] = {}
    for arg in get_args(tp):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and "type" in arg.model_fields:
            for tag in get_args(arg.model_fields["type"].annotation):
                members[str(tag)] = arg
        elif isinstance(arg, type):
            members[arg.__name__] = arg
    return members


def _resolve(loc: Loc) -> _Target:
    parts: list[str | int] = []
    current: Any = AppConfig
    owner: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for elem in loc:
        tp = _unwrap(current) if current is not None else None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            owner = tp
            field = tp.model_fields.get(elem) if isinstance(elem, str) else None
            current = field.annotation if field is not None else None
            parts.append(elem)
            continue
        if get_origin(tp) is list and isinstance(elem, int):
            args = get_args(tp)
            current = args[0] if args else None
            parts.append(elem)
            continue
        members = _union_members(tp)
        if isinstance(elem, str) and elem in members:
            current = members[elem]  # a discriminator tag / union branch: not a key
            continue
        parts.append(elem)
        owner, field, current = None, None, None
    return _Target(tuple(parts), owner, field, current)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _yaml_repr(value: Any) -> str:
    """A short rendering of a YAML value for messages (URL passwords redacted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = repr(redact_url(value))
        return shown if len(shown) <= 80 else shown[:76] + "...'"
    return _kind(value)


def _got(value: Any, parts: Loc) -> str:
    if any(isinstance(p, str) and "password" in p for p in parts):
        return ""
    return f" (got {_yaml_repr(value)})"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _bounds(field: FieldInfo | None, ctx: dict[str, Any]) -> str:
    lower: tuple[str, Any] | None = None
    upper: tuple[str, Any] | None = None
    for meta in field.metadata if field is not None else ():
        for attr, op in (("ge", ">="), ("gt", ">")):
            if getattr(meta, attr, None) is not None:
                lower = (op, getattr(meta, attr))
        for attr, op in (("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                upper = (op, getattr(meta, attr))
    if lower is None and upper is None:  # fall back to what pydantic reported
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if attr in ctx:
                return f"must be {op} {_num(ctx[attr])}"
        return "is out of range"
    if lower and upper:
        if lower[0] == ">=" and upper[0] == "<=":
            return f"must be between {_num(lower[1])} and {_num(upper[1])}"
        return f"must be {lower[0]} {_num(lower[1])} and {upper[0]} {_num(upper[1])}"
    one = lower or upper
    assert one is not None  # the both-None case returned above
    op, bound = one
    return f"must be {op} {_num(bound)}"


def _literal_values(target: _Target, ctx: dict[str, Any]) -> str:
    tp = _unwrap(target.field.annotation) if target.field is not None else None
    if get_origin(tp) is Literal:
        return ", ".join(str(v) for v in get_args(tp))
    return str(ctx.get("expected", "?"))


_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (not .inf or .nan)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "string_unicode": "must be a valid UTF-8 string",
    "list_type": "must be a list ('- item' entries)",
    "dict_type": "must be a mapping (key: value entries)",
    "model_type": "must be a mapping (key: value entries)",
    "model_attributes_type": "must be a mapping (key: value entries)",
    "path_type": "must be a file path",
}


def _message(err: Any, target: _Target, parts: Loc) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    name = parts[-1] if parts else ""
    if kind in ("config_rule", "config_value"):
        return str(err["msg"])
    if kind == "missing":
        described = target.field.description if target.field is not None else None
        return f"required key '{name}' is missing" + (f": {described}" if described else "")
    if kind == "extra_forbidden":
        allowed = list(target.owner.model_fields) if target.owner is not None else []
        shown = f"'{name}'" if isinstance(name, str) else repr(name)
        text = f"unknown key {shown} (allowed: {', '.join(allowed)})"
        close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.75)
        return text + (f"; did you mean '{close[0]}'?" if close else "")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(_union_members(_unwrap(target.final)) or ["?"])
        if kind == "union_tag_not_found":
            return f"required key '{name}' is missing (allowed: {tags})"
        what = f"{parts[-2]} type" if len(parts) > 1 and isinstance(parts[-2], str) else "type"
        return f"unknown {what} {ctx.get('tag')!r} (allowed: {tags})"
    if kind == "literal_error":
        return f"must be one of: {_literal_values(target, ctx)}" + _got(value, parts)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _bounds(target.field, ctx) + _got(value, parts)
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        text = "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
        return text + _got(value, parts)
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters" + _got(value, parts)
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == NAME_PATTERN:
            text = "must be 1-64 characters from A-Z, a-z, 0-9, '_' and '-' (used in MQTT topics)"
        else:
            text = f"must match the pattern {ctx.get('pattern')}"
        return text + _got(value, parts)
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return f"must contain at least {minimum} entr{'y' if minimum == 1 else 'ies'}"
    if kind == "too_long":
        return f"must contain at most {ctx.get('max_length')} entries"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind] + _got(value, parts)
    message = str(err.get("msg", kind))
    return message.removeprefix("Value error, ") + _got(value, parts)
