"""A small deterministic YAML writer for the generated files (no YAML library needed).

Mappings keep their insertion order; strings are written plain when that is unambiguous,
single-quoted when they are printable on one line, and double-quoted (JSON escapes, which
YAML accepts) otherwise; empty lists and mappings are
written inline. Enough for Prometheus rules, promtool tests and Alertmanager configs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump"]

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:-]*(?<!:)")
_RESERVED = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"})


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        if value.isprintable():
            return "'" + value.replace("'", "''") + "'"
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        out: list[str] = []
        for key, item in value.items():
            head = f"{pad}{_scalar(str(key))}:"
            if isinstance(item, Mapping | list | tuple) and item:
                if isinstance(item, Mapping):
                    out.append(head)
                    out.extend(_lines(item, indent + 2))
                else:
                    out.append(head)
                    out.extend(_lines(item, indent))
            else:
                out.append(f"{head} {_inline(item)}")
        return out
    if isinstance(value, list | tuple):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            if (isinstance(item, Mapping) and item) or (isinstance(item, list | tuple) and item):
                sub = _lines(item, indent + 2)
                out.append(f"{pad}- {sub[0].lstrip()}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_inline(item)}")
        return out
    return [pad + _scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[]"
    return _scalar(value)


def dump(value: Any, header: str = "") -> str:
    """``value`` as YAML text, with ``header`` lines as ``#`` comments on top.

    Examples
    --------
    >>> print(dump({"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": 'x{y="1"}'}]}],
    ...             "empty": []}, header="generated"), end="")
    # generated
    groups:
    - name: g
      rules:
      - record: a:b
        expr: 'x{y="1"}'
    empty: []
    """
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + "\n".join(_lines(value, 0)) + "\n"
