"""Benchmark results: rows appended to a JSON file, and a Markdown table rewritten from all of them."""
from __future__ import annotations

import json
import platform
from pathlib import Path


def device_name() -> str:
    """The GPU's name, or the CPU's and its core count when there is none."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return f"CPU: {names[0] if names else platform.processor() or 'unknown'}, {os.cpu_count()} cores"


def append_rows(rows: list[dict], json_path: Path, md_path: Path, columns: tuple[str, ...], header: str) -> None:
    """Add `rows` to the JSON list at json_path; rewrite md_path as `header` and a table of every row."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    every = json.loads(json_path.read_text()) if json_path.exists() else []
    every.extend(rows)
    json_path.write_text(json.dumps(every, indent=1) + "\n")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in every]
    md_path.write_text(header + "\n\n" + "\n".join(lines) + "\n")
