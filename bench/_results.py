"""Appending benchmark rows to bench/RESULTS.md under a script's own section (shared by the bench scripts)."""

from __future__ import annotations

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def append_to_section(section: str, header: str, table_head: str, rows: list[str]) -> None:
    """Append ``rows`` to the table under the ``section`` heading of RESULTS.md, creating the section (after the
    last one) and its table (under this run's ``header``) when absent; other sections are left as they are."""
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
    if section not in text:
        text = text.rstrip("\n") + f"\n\n{section}\n\n{header}\n\n" + table_head
    start = text.index(section)
    nxt = text.find("\n## ", start + len(section))
    end = len(text) if nxt < 0 else nxt + 1
    body = text[start:end].rstrip("\n") + "\n"
    if "| date | device |" not in body:  # a section without a table yet: start one under this run's header
        body += f"\n{header}\n\n" + table_head
    body += "".join(r + "\n" for r in rows)
    text = text[:start] + body + ("\n" + text[end:] if nxt >= 0 else "")
    with open(RESULTS, "w") as f:
        f.write(text)
