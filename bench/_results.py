"""What bench/optim.py and bench/xent.py share in making their RESULTS.md rows: the copy bandwidth their
"% copy BW" column is a fraction of, and appending the rows under the script's own section."""

from __future__ import annotations

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def copy_bandwidth() -> float:
    """Bytes/s of a device-to-device copy of 1 GiB (read + write), the roofline the percentages use."""
    import torch
    from triton.testing import do_bench

    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    ms = do_bench(lambda: dst.copy_(src), quantiles=[0.5])
    return 2 * src.numel() * 4 / (ms * 1e-3)


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
