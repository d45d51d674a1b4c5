"""Read ``config.yaml`` into an :class:`~edge_daemon.config.schema.AppConfig`.

Contract:

* :func:`load_config` / :func:`load_config_text` return a validated ``AppConfig`` or raise
  :class:`ConfigError` - never anything else, and never print.
* ``ConfigError.errors`` lists every problem found as a :class:`ConfigIssue` that names
  the file, the 1-based line in the YAML text, the key path (``cameras[0].source.url``)
  and what is wrong *and* what is allowed.
* ``${NAME}`` and ``${NAME:-default}`` in string values are replaced from the environment
  after YAML parsing (so a value can never break the YAML syntax). As in the shell, the
  default is also used when the variable is set but empty. ``$${`` gives a literal ``${``.
* Relative file paths are resolved against the config file's directory.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edge_daemon.config.schema import NAME_PATTERN, AppConfig, redact_url
from edge_daemon.redact import is_secret_param

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "load_config",
    "load_config_text",
    "warn_insecure_permissions",
]

Loc = tuple[str | int, ...]

_MAX_VALUES = 100_000  # after alias expansion; stops "billion laughs" documents
_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file.

    ``line`` is 1-based (None when unknown); ``path`` is the key path such as
    ``cameras[0].source.url`` ("" for problems with the file as a whole).
    """

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; ``errors`` says why (at least one issue)."""

    def __init__(self, errors: list[ConfigIssue]) -> None:
        self.errors: list[ConfigIssue] = list(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return f"invalid configuration: {self.errors[0]}"
        lines = "\n".join(f"  {issue}" for issue in self.errors)
        return f"invalid configuration ({len(self.errors)} problems):\n{lines}"


class _Invalid(Exception):
    """Internal: aborts loading with these issues."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__(issues)
        self.issues = issues


# --------------------------------------------------------------------------- public API


#: Largest config file read, in bytes. A real config is a few kB; the cap keeps a wrong
#: path (a log, /dev/zero, a disk image) from being read into memory whole.
MAX_CONFIG_BYTES = 1 << 20


class _NotAConfigFile(Exception):
    """The path exists but is no regular file of sane size; the message says what."""


def _read_config_bytes(path: Path) -> bytes:
    """The file's bytes, refusing devices, FIFOs and sockets and files over the cap.

    Opened with ``O_NONBLOCK`` so that a FIFO nobody writes to cannot hang the open;
    the type is checked on the open descriptor (no race with a rename in between).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(str(path))
        if not stat.S_ISREG(st.st_mode):
            raise _NotAConfigFile("is not a regular file (a device, FIFO or socket)")
        if st.st_size > MAX_CONFIG_BYTES:
            raise _NotAConfigFile(
                f"is {st.st_size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,}"
            )
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            raw = f.read(MAX_CONFIG_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:  # grew while being read
        raise _NotAConfigFile(f"is over {MAX_CONFIG_BYTES:,} bytes")
    return raw


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> AppConfig:
    """Load and validate a YAML config file.

    ``env`` replaces ``os.environ`` for ``${VAR}`` substitution (tests). Raises
    :class:`ConfigError` when the file is missing, unreadable, not UTF-8, not valid YAML
    or not a valid configuration.
    """
    name = str(path)
    file_path = Path(path)
    problem: str | None
    try:
        raw = _read_config_bytes(file_path)
    except _NotAConfigFile as exc:
        raise _error(name, None, "", str(exc)) from None
    except FileNotFoundError:
        problem = f"file not found ({Path(os.path.abspath(file_path))})"
    except IsADirectoryError:
        problem = "is a directory, not a config file"
    except PermissionError:
        problem = "permission denied: cannot read the config file"
    except (OSError, ValueError) as exc:
        problem = f"cannot read the config file: {exc}"
    else:
        problem = None
    if problem is not None:
        raise _error(name, None, "", problem)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise _error(
            name, line, "", f"the file is not valid UTF-8 (byte 0x{byte}); save it as UTF-8"
        ) from None
    base_dir = Path(os.path.abspath(file_path)).parent
    return load_config_text(text, name, base_dir=base_dir, env=env)


def load_config_text(
    text: str,
    source_name: str = "<string>",
    *,
    base_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AppConfig:
    """Validate config YAML given as text.

    ``source_name`` is used as the file name in issues. Relative paths in the config are
    resolved against ``base_dir`` (default: the current directory). ``env`` replaces
    ``os.environ`` for ``${VAR}`` substitution. Raises :class:`ConfigError` only.
    """
    base = Path(os.path.abspath(base_dir if base_dir is not None else Path.cwd()))
    environ: Mapping[str, str] = os.environ if env is None else env
    try:
        return _load(text, source_name, base, environ)
    except _Invalid as exc:
        raise ConfigError(exc.issues) from None
    except RecursionError:
        raise _error(source_name, None, "", "the document is nested too deeply") from None
    except Exception as exc:  # a bug here must still not escape as a traceback
        raise _error(
            source_name, None, "", f"internal error while loading: {type(exc).__name__}: {exc}"
        ) from None


def warn_insecure_permissions(path: str | Path) -> str | None:
    """A warning when the file contains a password and is readable by every user.

    A password given only as ``${VAR}`` (without default) does not count: the secret is
    not in the file. Returns None when there is nothing to warn about or the file cannot
    be read (loading it reports that).
    """
    try:
        mode = os.stat(path).st_mode
        if not mode & stat.S_IROTH:
            return None
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, ValueError):
        return None
    if not _holds_secret(text):
        return None
    return (
        f"{path} contains a password and is readable by every user "
        f"(mode {stat.S_IMODE(mode):04o}); restrict it with: chmod o-r {path} "
        "(or use ${MQTT_PASSWORD} in the file and set the variable)"
    )


# --------------------------------------------------------------------------- pipeline


def _error(file: str, line: int | None, path: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file, line, path, message)])


def _load(text: str, file: str, base_dir: Path, env: Mapping[str, str]) -> AppConfig:
    root, data = _parse_yaml(text, file)
    if root is None:
        raise _Invalid(
            [
                ConfigIssue(
                    file,
                    None,
                    "",
                    "the configuration is empty; it needs at least a 'cameras:' list "
                    "(see config.yaml in the repository for a commented example)",
                )
            ]
        )
    if not isinstance(data, dict):
        raise _Invalid(
            [
                ConfigIssue(
                    file,
                    root.start_mark.line + 1,
                    "",
                    "the top level must be a mapping of settings (key: value lines), "
                    f"got {_kind(data)}",
                )
            ]
        )
    data = _substitute_env(data, env, file, root)
    try:
        return AppConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _Invalid(_issues_from_validation(exc, file, root)) from None


def _parse_yaml(text: str, file: str) -> tuple[Node | None, Any]:
    """Compose (for line numbers) and construct (for values) a single YAML document."""
    loader: _TrackingLoader | None = None
    try:
        loader = _TrackingLoader(text)
        root = loader.get_single_node()
        if root is None:
            return None, None
        dup = _duplicate_keys(root, file)
        if dup:
            raise _Invalid(dup)
        try:
            data = loader.construct_document(root)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # e.g. a date like 2024-13-45, or an empty "!!int"
            node = loader.last_node
            line = node.start_mark.line + 1 if node is not None else None
            shown = f" {node.value!r}" if isinstance(node, ScalarNode) else ""
            tag = f" ({node.tag.replace('tag:yaml.org,2002:', '!!')})" if node is not None else ""
            raise _Invalid(
                [ConfigIssue(file, line, "", f"invalid YAML value{shown}{tag}: {exc}")]
            ) from None
        return root, data
    except yaml.MarkedYAMLError as exc:
        raise _Invalid([_yaml_issue(exc, file)]) from None
    except yaml.reader.ReaderError as exc:  # non-printable characters
        position = exc.position if isinstance(exc.position, int) else 0
        line = text[:position].count("\n") + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise _Invalid(
            [
                ConfigIssue(
                    file,
                    line,
                    "",
                    f"invalid YAML: character {char!r} (column {column}) is not allowed in YAML",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise _Invalid([ConfigIssue(file, None, "", f"invalid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()


class _TrackingLoader(yaml.SafeLoader):
    """SafeLoader that remembers the node being constructed (for error lines)."""

    last_node: Node | None = None

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        self.last_node = node
        return super().construct_object(node, deep=deep)


def _yaml_issue(exc: yaml.MarkedYAMLError, file: str) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "cannot parse"
    message = f"invalid YAML: {problem}"
    if mark is not None:
        message += f" (column {mark.column + 1})"
    if exc.context:
        ctx_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f", {exc.context}{ctx_line}"
    if "'\\t'" in problem:
        message += "; YAML does not allow tabs for indentation, use spaces"
    return ConfigIssue(file, mark.line + 1 if mark is not None else None, "", message)


def _duplicate_keys(root: Node, file: str) -> list[ConfigIssue]:
    """YAML silently keeps the last of duplicate keys; a strict config rejects them."""
    issues: list[ConfigIssue] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen_nodes or len(loc) > _MAX_DEPTH:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                    ident = (key.tag, key.value)
                    line = key.start_mark.line + 1
                    if ident in first:
                        issues.append(
                            ConfigIssue(
                                file,
                                line,
                                _format_path((*loc, key.value)),
                                f"duplicate key '{key.value}' (first defined at line "
                                f"{first[ident]}); each key may appear only once",
                            )
                        )
                    else:
                        first[ident] = line
                child = key.value if isinstance(key, ScalarNode) else "?"
                stack.append((value, (*loc, child)))
        elif isinstance(node, SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return sorted(issues, key=lambda issue: issue.line or 0)


# --------------------------------------------------------------------------- ${VAR}

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


# --------------------------------------------------------------------------- errors


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


def _format_path(parts: Loc) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _key_index(node: MappingNode) -> dict[str, tuple[Node, Node]]:
    """``{key: (key node, value node)}`` of a mapping node, built once per node.

    Looking keys up by scanning made every error a pass over its mapping: 10,000
    unknown keys took about 30 s to report. The index lives on the node itself, so it
    goes when the parsed tree does.
    """
    index: dict[str, tuple[Node, Node]] | None = getattr(node, "_edge_key_index", None)
    if index is None:
        index = {}
        for key, value in node.value:  # last match wins, as in the constructed data
            if isinstance(key, ScalarNode):
                index[key.value] = (key, value)
        # Cached on the node itself: PyYAML nodes have no slot for it, hence the ignore.
        node._edge_key_index = index  # type: ignore[attr-defined]
    return index


def _line_for(root: Node, parts: Loc) -> int | None:
    """The line of the deepest key of ``parts`` present in the YAML node tree."""
    node = root
    line = root.start_mark.line + 1
    for part in parts:
        if isinstance(node, MappingNode):
            found = _key_index(node).get(str(part))
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


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


# --------------------------------------------------------------------------- secrets

# A value that is only a reference holds no secret: ${VAR} (no default) or
# ${credential:NAME} (a systemd credential, read at start).
_PURE_REF_RE = re.compile(r"^\$\{(?:[A-Za-z_][A-Za-z0-9_]*|credential:[A-Za-z0-9_.@-]+)\}$")


def _is_secret_value(value: Any) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, str) and _PURE_REF_RE.match(value))


def _holds_secret(text: str) -> bool:
    """True when the YAML text contains a literal secret: an MQTT password, a live-view
    or metrics token, a camera URL's password or secret query parameter (not just a
    ``${VAR}`` or ``${credential:NAME}`` reference)."""
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        return (
            re.search(r"password\s*:\s*\S", text) is not None
            or re.search(r"://[^/\s:@]*:[^@\s]+@", text) is not None
        )
    if not isinstance(data, dict):
        return False
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict) and _is_secret_value(mqtt.get("password")):
        return True
    for section in ("live_view", "metrics"):  # their access tokens
        sec = data.get(section)
        if isinstance(sec, dict) and _is_secret_value(sec.get("token")):
            return True
    cameras = data.get("cameras")
    for camera in cameras if isinstance(cameras, list) else []:
        source = camera.get("source") if isinstance(camera, dict) else None
        url = source.get("url") if isinstance(source, dict) else None
        if isinstance(url, str):
            netloc = url.partition("://")[2].partition("/")[0]
            userinfo, at, _ = netloc.rpartition("@")
            if at and ":" in userinfo and _is_secret_value(userinfo.partition(":")[2]):
                return True
            for param in re.split(r"[&;]", url.partition("?")[2].partition("#")[0]):
                name, eq, value = param.partition("=")
                if eq and is_secret_param(name) and _is_secret_value(value):
                    return True  # ?pwd=..., ?token=...
    return False
