"""YAML as people write it by hand: PyYAML's safe loader, except that a key given twice in one mapping is an error
(PyYAML keeps the last one without a word, so a second `prune:` would silently replace the first)."""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that holds the same key twice; its problem names the key and its problem_mark the second one."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):  # unhashable: the base class reports it
                continue
            if key in seen:
                raise DuplicateKeyError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} is given twice (first at line {seen[key].start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def load_yaml(text: str) -> Any:
    """Parse `text` as safe YAML, refusing duplicate keys (DuplicateKeyError, a yaml.YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)
