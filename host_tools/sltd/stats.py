"""Readable summaries of an SLTD store (``fieldterm sltd stats``)."""

from __future__ import annotations

from typing import Any


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:5.1f} %" if total else "    - "


def format_stats(st: dict[str, Any]) -> str:
    """The dict of ``SltdStore.stats()`` as an aligned text table."""
    total = int(st["records"])
    lines = [
        f"store          {st['store']}",
        f"records        {total:,}",
        f"list version   {st['list_version']}",
        f"issuing states {st['issuing_states']}",
        f"size           {st['size_bytes'] / 1e6:,.1f} MB"
        + (f" ({st['size_bytes'] / total:.0f} bytes/record)" if total else ""),
    ]
    for title, key in (
        ("by status", "by_status"),
        ("by document type", "by_document_type"),
        ("top issuing states", "top_issuing_states"),
    ):
        lines.append(f"{title}:")
        for name, n in st[key].items():
            lines.append(f"  {name:<14} {n:>14,}  {_share(n, total)}")
    return "\n".join(lines)
