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


def merge(folders: list[Path], into: Path) -> int:
    """Append the rows of every NAME.json under `folders` (as a device session brings them back) to
    into/NAME.json, but for those it already holds, and rewrite into/NAME.md with the columns and header it has.
    Returns the result files found."""
    count = 0
    for found in sorted(p for folder in folders for p in folder.rglob("*.json")):
        json_path, md_path = into / found.name, into / found.with_suffix(".md").name
        if not md_path.exists():
            raise SystemExit(f"{found}: no {md_path} to take the columns from")
        text = md_path.read_text()
        header, table = text.split("\n\n| ", 1)
        columns = tuple(c.strip() for c in table.split("\n", 1)[0].rstrip(" |").split(" | "))
        had = json.loads(json_path.read_text()) if json_path.exists() else []
        rows = [row for row in json.loads(found.read_text()) if row not in had]  # merged twice: added once
        append_rows(rows, json_path, md_path, columns, header)
        count += 1
        print(f"{found}: {len(rows)} row(s) added to {json_path}")
    return count


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Merge the results a device session brought back.")
    parser.add_argument("command", choices=["merge"])
    parser.add_argument("folders", type=Path, nargs="+", help="folders holding NAME.json files (searched within)")
    parser.add_argument("--into", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    if not merge(args.folders, args.into):
        raise SystemExit("no results found in " + ", ".join(map(str, args.folders)))
