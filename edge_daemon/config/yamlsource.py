"""The YAML source: reading it and mapping key paths back to its lines.

:func:`_parse_yaml` composes (for line numbers) and constructs (for values) one document,
refusing duplicate keys and turning YAML errors into :class:`ConfigIssue` values;
:func:`_line_for` gives the line of a key path in the composed node tree.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from edge_daemon.config.issues import ConfigIssue, Loc, _format_path, _Invalid

_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
        except Exception as exc:  # noqa: BLE001 - e.g. a date like 2024-13-45, or an empty "!!int"
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
