"""The reliability table: each fault or bad input tried, how often, what happened, and the tags lost.

Tests call ``row(...)``; the integration conftest writes the rows to ``.tmp/reliability/rows.json`` at the end of
the session and ``tests/reliability_report.py`` turns them into docs/reliability.md. "Tags lost" comes from
``skopeo list-tags`` before and after (``snapshot``), never from the collection's client.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

ROWS: list[dict] = []
_LOCK = threading.Lock()


def snapshot(lab, repositories, user: str = "alice") -> dict[str, set[str]]:
    """Every tag of each repository as skopeo sees it (a missing repository has no tags)."""
    tags = {}
    for repository in repositories:
        proc = subprocess.run(["skopeo", "list-tags", *lab.skopeo_options(user), f"docker://{lab.host}/{repository}"],
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode == 0:
            tags[repository] = set(json.loads(proc.stdout).get("Tags") or [])
        elif "unknown" in proc.stderr.lower() or "not found" in proc.stderr.lower():
            tags[repository] = set()
        else:
            raise AssertionError(f"skopeo list-tags {repository} failed: {proc.stderr[-500:]}")
    return tags


def lost(before: dict[str, set[str]], after: dict[str, set[str]], deleted: dict[str, set[str]] | None = None) -> int:
    """Tags present before, absent after, and not meant to be deleted."""
    deleted = deleted or {}
    return sum(len(tags - after.get(repo, set()) - deleted.get(repo, set())) for repo, tags in before.items())


def short(text: str, limit: int = 150) -> str:
    """At most ``limit`` characters, cut at a word (a table cell, not the whole message)."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def row(category: str, case: str, outcome: str, *, tries: int = 1, tags_lost: int = 0, mode: str = "plain",
        credentials_sent: int | None = None) -> None:
    """``credentials_sent``: for a case that checks it, requests that carried credentials to a host they do not
    belong to (counted from what recording proxies saw)."""
    entry = {"category": category, "case": short(case), "mode": mode,
             "tries": tries, "outcome": short(outcome), "tags_lost": tags_lost}
    if credentials_sent is not None:
        entry["credentials_sent"] = credentials_sent
    with _LOCK:
        ROWS.append(entry)


def write(path: Path) -> None:
    if ROWS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ROWS, indent=1))
