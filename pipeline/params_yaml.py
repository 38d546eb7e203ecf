"""Params YAML read the way DVC reads it: ruamel.yaml (YAML 1.2, DVC's own reader), duplicate keys refused.

PyYAML follows YAML 1.1, where ``off``/``on``/``yes``/``no`` are booleans and ``2e-3`` is a string; DVC
(ruamel, YAML 1.2) reads them as a string and a number, and rewrites params.yaml on ``dvc exp run -S``. Reading
with ruamel itself keeps both readers in agreement without a patched resolver. A key written twice in one
mapping is a :class:`DuplicateKeyError` naming its dotted path and both lines (ruamel's own error names
neither the path nor fits on one line).
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML, YAMLError, nodes

__all__ = ["DuplicateKeyError", "YAMLError", "parse_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(YAMLError):
    """A mapping of the YAML text names the same key twice; ``str()`` is one line naming the key (dotted
    path) and both lines."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key '{key}' at line {line} (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


def _reader() -> YAML:
    y = YAML(typ="safe", pure=True)
    y.allow_duplicate_keys = True  # refused by _refuse_duplicate_keys, with the dotted path and both lines
    return y


def _refuse_duplicate_keys(node: nodes.Node | None, path: str = "") -> None:
    """Raise :class:`DuplicateKeyError` for the first mapping in ``node`` (depth first) that repeats a key.

    Merge keys (``<<``) are not duplicates: overriding a merged key is what they are for.
    """
    if isinstance(node, nodes.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or key_node.value == "<<":
                continue
            key = str(key_node.value) if isinstance(key_node, nodes.ScalarNode) else repr(key_node.value)
            dotted = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(dotted, line, first[key])
            first[key] = line
            _refuse_duplicate_keys(value_node, dotted)
    elif isinstance(node, nodes.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{path}[{i}]")


def parse_yaml(text: str) -> Any:
    """Parse params YAML as DVC does (YAML 1.2); a duplicate key is a :class:`DuplicateKeyError`."""
    _refuse_duplicate_keys(_reader().compose(text))
    return _reader().load(text)
