"""Hand-written YAML: a key given twice is an error naming it and both lines."""

import pytest

from edgewise.base.yamltext import DuplicateKeyError, load_yaml


def test_a_key_given_twice_names_both_lines():
    with pytest.raises(DuplicateKeyError, match=r"key 'prune' is given twice \(first at line 2\)"):
        load_yaml("name: r\nprune: {rate: 0.3}\nprune: {rate: 0.5}\n")
    assert load_yaml("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}
