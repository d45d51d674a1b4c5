"""The error values of config loading, shared by every step.

:class:`ConfigIssue` (one problem: file, line, key path, message), :class:`ConfigError`
(what the loader raises), the internal :class:`_Invalid` that aborts a step with its
issues, and ``Loc``, a key path as pydantic gives it, with :func:`_format_path` to write
one as ``cameras[0].source.url``.
"""

from __future__ import annotations

from dataclasses import dataclass

Loc = tuple[str | int, ...]


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


def _error(file: str, line: int | None, path: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file, line, path, message)])


def _format_path(parts: Loc) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
