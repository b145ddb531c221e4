"""YAML text of the generated files (rules, promtool tests, Alertmanager, Grafana provisioning,
the Kubernetes ConfigMap): PyYAML's safe dumper, in a fixed layout.

Mappings keep their insertion order (``sort_keys=False``), so the same input gives the same
bytes. Besides PyYAML's defaults: no line folding (a PromQL expression stays on one line), no
``&anchor``/``*alias`` for objects that appear twice, non-ASCII text as it is, and strings of
several lines as literal blocks (``|``) when YAML allows it.

May import: ``yaml``.

Examples
--------
>>> print(to_yaml({"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": 'x{y="1"}'}]}],
...                "empty": []}, header="generated"), end="")
# generated
groups:
- name: g
  rules:
  - record: a:b
    expr: x{y="1"}
empty: []
"""

from __future__ import annotations

import math
from typing import Any

import yaml

__all__ = ["to_yaml"]


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # no type stubs for yaml installed
    """The safe dumper, writing a repeated object out again instead of as an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # PyYAML falls back to quotes where "|" cannot be
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(value: Any, header: str = "") -> str:
    """``value`` as YAML text, with each line of ``header`` as a ``#`` comment on top."""
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    text: str = yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=math.inf
    )
    return comments + text
