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

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_daemon.config.interpolate import _substitute_env
from edge_daemon.config.issues import ConfigError, ConfigIssue, _error, _Invalid
from edge_daemon.config.schema import AppConfig
from edge_daemon.config.wording import _issues_from_validation, _kind
from edge_daemon.config.yamlsource import _parse_yaml
from edge_daemon.redact import is_secret_param

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "load_config",
    "load_config_text",
    "warn_insecure_permissions",
]


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
    except Exception as exc:  # noqa: BLE001 - a bug here must still not escape as a traceback
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
