"""Render results as a plain-text or Markdown table (one row per scenario) and as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .model import REGISTRY, Column, Result

SEP = " | "


def fmt_value(kind: str, v: float | None) -> str:
    if v is None:
        return "-"
    if kind == "rate":
        if v >= 1e6:
            return f"{v / 1e6:.2f}M"
        return f"{v / 1e3:.1f}k" if v >= 1e4 else f"{v:.0f}"
    if kind in ("ms", "s"):
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _groups(columns: Sequence[Column]) -> list[list[Column]]:
    """Adjacent latency columns share one "a/b/c ms" group; others stand alone."""
    groups: list[list[Column]] = []
    for c in columns:
        if groups and c.kind == "ms" and groups[-1][-1].kind == "ms":
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups


def metric_header(columns: Sequence[Column]) -> str:
    return SEP.join("/".join(c.label for c in g) + (" ms" if g[0].kind == "ms" else "")
                    for g in _groups(columns))


def _cell(result: Result | None, columns: Sequence[Column]) -> str:
    if result is None:
        return "-"
    if not any(result.metrics.get(c.key) is not None for c in columns):
        return "FAIL" if result.error else "-"
    text = SEP.join("/".join(fmt_value(c.kind, result.metrics.get(c.key)) for c in g)
                    for g in _groups(columns))
    if result.error:
        return text + " !"
    return text + " *" if result.partial else text


def _cpu(result: Result | None) -> str:
    if result is None:
        return "-"
    pairs = result.details.get("cpu_pairs") or [
        (result.details.get("client_cpu_pct"), result.details.get("server_cpu_pct"))]
    if all(c is None and s is None for c, s in pairs):
        return "-"
    return " ".join("/".join("-" if v is None else f"{v:.0f}" for v in pair) for pair in pairs)


def ratios(a: Result | None, b: Result | None,
           columns: Sequence[Column]) -> list[tuple[Column, float | None]]:
    """The first target's value over the second's, for each column that has a ratio."""
    out: list[tuple[Column, float | None]] = []
    for c in columns:
        if not c.ratio:
            continue
        x = a.metrics.get(c.key) if a else None
        y = b.metrics.get(c.key) if b else None
        out.append((c, x / y if x is not None and y else None))
    return out


def _ratio(a: Result | None, b: Result | None, columns: Sequence[Column]) -> str:
    return "/".join("-" if v is None else f"{v:.2f}" for _c, v in ratios(a, b, columns))


def _lines(rows: Sequence[tuple[str, str]], targets: Sequence[str],
           results: Sequence[Result]) -> list[list[str]]:
    """The comparison's header and rows of cells, for the text and Markdown tables."""
    by_key = {(r.label, r.target): r for r in results}
    header = ["scenario", "metric"]
    for t in targets:
        header += [t, "cpu% cli/srv"]
    with_ratio = len(targets) == 2
    if with_ratio:
        header.append(f"ratio {targets[0]}/{targets[1]}")
    lines = [header]
    for label, name in rows:
        cols = REGISTRY[name].columns
        line = [label, metric_header(cols)]
        for t in targets:
            r = by_key.get((label, t))
            line += [_cell(r, cols), _cpu(r)]
        if with_ratio:
            line.append(_ratio(by_key.get((label, targets[0])), by_key.get((label, targets[1])),
                               cols))
        lines.append(line)
    return lines


def table(rows: Sequence[tuple[str, str]], targets: Sequence[str],
          results: Sequence[Result]) -> str:
    """rows: (label, scenario name) in run order; one column group per target."""
    lines = _lines(rows, targets, results)
    header = lines[0]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
           for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = _notes(results)
    if notes:
        out += ["", "notes (* partial, ! error):", *notes]
    return "\n".join(out)


def markdown(rows: Sequence[tuple[str, str]], targets: Sequence[str],
             results: Sequence[Result]) -> str:
    """The same comparison as a Markdown table, notes as a list below it."""
    lines = [[cell.replace("|", "\\|") for cell in row]
             for row in _lines(rows, targets, results)]
    out = ["| " + " | ".join(row) + " |" for row in lines]
    out.insert(1, "|" + "|".join("---" for _ in lines[0]) + "|")
    notes = _notes(results)
    if notes:
        out += ["", "Notes (* partial, ! error):", "", *(f"- {n.strip()}" for n in notes)]
    return "\n".join(out) + "\n"


def _notes(results: Sequence[Result]) -> list[str]:
    """One line per problem; a target that failed everything the same way gets one line."""
    notes: list[str] = []
    for target in dict.fromkeys(r.target for r in results):
        mine = [r for r in results if r.target == target]
        errors = {r.error for r in mine}
        if len(mine) > 1 and len(errors) == 1 and None not in errors:
            notes.append(f"  {target} (all scenarios): {mine[0].error}")
            continue
        for r in mine:
            if r.error:
                notes.append(f"  {target} / {r.label}: {r.error}")
            elif r.partial:
                notes.append(f"  {target} / {r.label}: time limit reached, partial numbers")
    return notes


def host_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: str, host: dict[str, Any], targets: Sequence[dict[str, Any]],
               results: Sequence[Result], options: dict[str, Any]) -> None:
    doc = {
        "host": host,
        "options": options,
        "targets": list(targets),
        "results": [r.to_json() for r in results],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
