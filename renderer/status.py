"""`render status OUT`: how far a render got, read from what it keeps under OUT/.renderer/."""
from __future__ import annotations

from pathlib import Path

from renderer.audio.export import written_print
from renderer.book import RendererError
from renderer.store import FILE_PRINTS, RENDER_PLAN, STORE_DIR, TakeStore, read_json


def _file_state(out: Path, name: str, keys: list[str], fmt: str, prints: dict, loudness: float | None) -> str:
    if not (out / name).is_file():
        return "not written"
    made = written_print(keys, fmt, loudness)
    return "complete" if prints.get(name) == made else "out of date"


def render_status(out: Path) -> list[str]:
    """Lines for the user: the book, then per chapter `NN title: done/total chunks, file state`."""
    plan = read_json(out / STORE_DIR / RENDER_PLAN, None)
    if plan is None:
        raise RendererError(f"{out}: no render here (no {STORE_DIR}/{RENDER_PLAN})")
    store = TakeStore(out)
    prints = read_json(out / STORE_DIR / FILE_PRINTS, {})
    fmt, loudness = plan["format"], plan.get("loudness")
    lines = [f"{plan['title']} ({plan['book']}), voice {plan['voice']}, {fmt}"]
    done_all = total_all = 0
    for chapter in plan["chapters"]:
        done = sum(store.has(key) for key in chapter["keys"])
        total = len(chapter["keys"])
        done_all, total_all = done_all + done, total_all + total
        state = f", {chapter['file']}: {_file_state(out, chapter['file'], chapter['keys'], fmt, prints, loudness)}" if chapter["file"] else ""
        lines.append(f"{chapter['index']:3d} {chapter['title']}: {done}/{total} chunks{state}")
    if plan.get("file"):
        keys = [key for chapter in plan["chapters"] for key in chapter["keys"]]
        lines.append(f"{plan['file']}: {_file_state(out, plan['file'], keys, fmt, prints, loudness)}")
    lines.append(f"{done_all}/{total_all} chunks done")
    return lines
