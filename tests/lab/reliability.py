"""The reliability table: each fault or bad input tried, how often, what happened, and the tags lost.

Tests call ``row(...)``; at the end of its session each pytest process writes its rows to the run's directory
(``write_process_rows``), and the process that ran or started the tests gathers every process's rows of the run into
``.tmp/reliability/rows.json`` (``merge_run_rows``); ``tests/reliability_report.py`` turns them into docs/reliability.md. "Tags lost" comes from
``skopeo list-tags`` before and after (``snapshot``), never from the collection's client.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from tests.lab import transcripts

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


def write_process_rows() -> None:
    """This process's rows, to its file in the run's directory (none: no file)."""
    with _LOCK:
        rows = list(ROWS)
    if rows:
        transcripts.process_file("reliability", "json").write_text(json.dumps(rows, indent=1))


def merge_run_rows(path: Path) -> None:
    """Every process's rows of this run, in one file (left alone when the run recorded none)."""
    rows = [entry for part in transcripts.run_files("reliability", "json") for entry in json.loads(part.read_text())]
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1))
