"""Grafana's PostgreSQL macros and template variables, expanded the way Grafana expands them.

Template variables are interpolated first (``$name``, ``${name}``), then the datasource's macros:
``$__timeFilter(col)`` -> ``col BETWEEN 'from' AND 'to'``, ``$__timeGroupAlias(col, '5m')`` ->
``floor(extract(epoch from col)/300)*300 AS "time"``, ``$__timeFrom()``, ``$__timeTo()``, ``$__interval``.
"""

from __future__ import annotations

import re
from datetime import datetime

UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def interval_seconds(text: str) -> float:
    match = re.fullmatch(r"\s*'?(\d+)(ms|s|m|h|d|w)'?\s*", text)
    if not match:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(match.group(1)) * UNITS_S[match.group(2)]


def expand(sql: str, start: datetime, end: datetime, variables: dict[str, str], interval: str = "1m") -> str:
    for name in sorted(variables, key=len, reverse=True):
        sql = sql.replace("${%s}" % name, variables[name])  # noqa: UP031 - braces are literal here
        sql = re.sub(r"\$" + re.escape(name) + r"\b", lambda _, v=variables[name]: v, sql)
    frm, to = (f"'{t.isoformat().replace('+00:00', 'Z')}'" for t in (start, end))
    sql = sql.replace("$__interval_ms", str(int(interval_seconds(interval) * 1000))).replace("$__interval", interval)

    def macro(match: re.Match) -> str:
        name, args = match.group(1), [a.strip() for a in match.group(2).split(",")] if match.group(2).strip() else []
        if name == "timeFilter":
            return f"{args[0]} BETWEEN {frm} AND {to}"
        if name == "timeFrom":
            return frm
        if name == "timeTo":
            return to
        if name in ("timeGroup", "timeGroupAlias"):
            seconds = interval_seconds(args[1])
            group = f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "time":
            return f'{args[0]} AS "time"'
        raise ValueError(f"macro $__{name} is not expanded by this test helper")

    sql = re.sub(r"\$__(\w+)\(([^()]*)\)", macro, sql)
    leftover = re.search(r"\$\w+", sql)
    if leftover:
        raise ValueError(f"unexpanded {leftover.group(0)} in: {sql}")
    return sql
