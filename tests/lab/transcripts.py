"""What every run of a test session printed, and the secrets none of it may contain.

The integration runner records the output and results of every Ansible run; a lab records its registry's log
when it closes (the requests as we sent them: a secret in a URL would show there); the token server records every
token it issues. ``leaks()`` lists each place a secret or an ``Authorization`` value turned up, for the final test
of the session (tests/integration/test_zz_secrets.py).

A test run may be several processes (pytest-xdist workers, then the final whole-run checks): each process appends
what it records to its own files in the run's directory, ``.tmp/test-runs/<run id>/``, and the checks read every
process's files. The run id is ``PYTEST_XDIST_TESTRUNUID`` (xdist gives it to its workers; the integration conftest
sets it in a process that has none, so one pytest process is a run of its own). Outside a test run (``make demo``,
the benchmarks) nothing is recorded.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

_LOCK = threading.Lock()
RUNS = Path(__file__).resolve().parents[2] / ".tmp" / "test-runs"
RUN_ENV = "PYTEST_XDIST_TESTRUNUID"
_SEEN_SECRETS: set[str] = set()  # already written by this process

# An Authorization header (or its JSON/repr form) with a value: never printed, whatever the value is.
AUTH_VALUE = re.compile(r"(?i)authorization[\"']?\s*[:=]\s*[\"']?(basic|bearer)\s+[A-Za-z0-9._~+/-]{8,}")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"


def run_dir() -> Path:
    """This test run's directory (a process outside any run, e.g. ``python -m tests.lab``, is a run of its own)."""
    run = os.environ.setdefault(RUN_ENV, new_run_id())
    return RUNS / run


def process_file(kind: str, suffix: str = "jsonl") -> Path:
    """This process's file of one kind (transcripts, secrets, module-results, reliability) in the run's directory."""
    path = run_dir() / f"{kind}-{os.getpid()}.{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def run_files(kind: str, suffix: str = "jsonl") -> list[Path]:
    """The files of one kind every process of this run wrote."""
    return sorted(run_dir().glob(f"{kind}-*.{suffix}"))


def read_lines(kind: str) -> list:
    return [json.loads(line) for path in run_files(kind) for line in path.read_text().splitlines() if line.strip()]


def _append(kind: str, entry) -> None:
    with _LOCK, open(process_file(kind), "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def prune_old_runs(keep_hours: float = 12) -> None:
    """Remove the directories of runs older than ``keep_hours`` (a run of the suite writes a few hundred MiB)."""
    limit = time.time() - keep_hours * 3600
    for path in RUNS.glob("*"):
        if path.is_dir() and path.stat().st_mtime < limit:
            shutil.rmtree(path, ignore_errors=True)


def add_user_secrets(users: dict[str, str]) -> None:
    """Passwords, and the base64 ``user:password`` a Basic header would carry."""
    for user, password in users.items():
        add_secret(password)
        add_secret(base64.b64encode(f"{user}:{password}".encode()).decode())


def recording() -> bool:
    """Inside a test run (its processes, and what they start, have the run id)."""
    return RUN_ENV in os.environ


def add_secret(value: str) -> None:
    if not recording():
        return
    with _LOCK:
        if not value or value in _SEEN_SECRETS:
            return
        _SEEN_SECRETS.add(value)
    _append("secrets", value)


def record(where: str, text: str) -> None:
    if recording():
        _append("transcripts", [where, text])


def transcripts() -> list[tuple[str, str]]:
    """(where, text) of everything every process of this run recorded."""
    return [tuple(pair) for pair in read_lines("transcripts")]  # JSON keeps each pair as a list


def secrets() -> set[str]:
    return set(read_lines("secrets"))


def leaks(recorded=None, known=None) -> list[str]:
    """Every (place, what) where a secret, an Authorization value or a JWT appears (default: this run's)."""
    recorded = transcripts() if recorded is None else list(recorded)
    known = sorted(secrets() if known is None else known)
    found = []
    for where, text in recorded:
        found += [f"{where}: secret #{known.index(s)}" for s in known if s in text]
        if AUTH_VALUE.search(text):
            found.append(f"{where}: an Authorization value")
        if JWT.search(text):
            found.append(f"{where}: a JWT")
    return found
