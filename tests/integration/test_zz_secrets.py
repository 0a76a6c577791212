"""Last file of the suite: no password, token or Authorization value anywhere in what the session saw.

Every Ansible run of the suite is recorded at -vvvv (tests/integration/runner.py), with its registered results;
every lab's registry log is recorded when the lab closes, and the logs of the labs still running are read here.
The secrets are every lab password (and its base64 Basic form) and every token or refresh token the token server
issued during the session. A run may be several pytest processes (xdist workers): the scan reads what every process
of the run recorded (tests/lab/transcripts.py), and runs after all of them (``whole_run``: tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.lab import registry, reliability, transcripts
from tests.lab.registry import ROOT

# Runs of the whole suite record a few hundred transcripts; fewer means this file ran alone.
MIN_TRANSCRIPTS = 40


def test_the_scanner_finds_what_it_looks_for():
    planted = [("planted", "msg: 'pw-4711 refused'"), ("header", "{'Authorization': 'Bearer abcdefghijkl'}"),
               ("jwt", "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig")]
    found = transcripts.leaks(planted, {"pw-4711"})
    assert [f.split(":")[0] for f in found] == ["planted", "header", "jwt"]
    assert transcripts.leaks([("clean", "Authorization: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")], {"pw-4711"}) == []


def test_what_every_process_of_the_run_recorded_is_gathered(monkeypatch, tmp_path):
    """Two other processes of one run (as xdist workers are) record a transcript, a secret and a reliability row each:
    the scan and the rows file see both, a process of another run sees neither."""
    monkeypatch.setenv(transcripts.RUN_ENV, f"gather-check-{os.getpid()}")
    worker = ("import sys; from tests.lab import reliability, transcripts; n = sys.argv[1]; "
              "transcripts.add_secret(f'pw-{n}-4711'); transcripts.record(f'worker {n}', f'said pw-{n}-4711'); "
              "reliability.row('fault', f'case {n}', 'ok'); reliability.write_process_rows()")
    try:
        for number in ("1", "2"):
            subprocess.run([sys.executable, "-c", worker, number], cwd=ROOT, check=True, timeout=60)
        assert sorted(transcripts.leaks()) == ["worker 1: secret #0", "worker 2: secret #1"]
        reliability.merge_run_rows(tmp_path / "rows.json")
        assert sorted(r["case"] for r in json.loads((tmp_path / "rows.json").read_text())) == ["case 1", "case 2"]
        monkeypatch.setenv(transcripts.RUN_ENV, f"gather-check-other-{os.getpid()}")
        assert transcripts.transcripts() == [] and transcripts.secrets() == set()
    finally:
        shutil.rmtree(transcripts.RUNS / f"gather-check-{os.getpid()}", ignore_errors=True)


def record_running_registry_logs() -> None:
    """The logs of this process's labs still running (session labs close after this test; closed labs recorded
    theirs, in whichever process of the run)."""
    for lab in list(registry._RUNNING):  # pylint: disable=protected-access
        if lab.log_path.exists():
            transcripts.record(f"registry log ({lab.mode} {lab.url})", lab.log_path.read_text(errors="replace"))


@pytest.mark.whole_run
def test_no_secret_in_any_output_result_or_registry_log():
    record_running_registry_logs()
    recorded, secrets = transcripts.transcripts(), transcripts.secrets()
    runs = [where for where, _text in recorded if not where.startswith("registry log")]
    if len(runs) < MIN_TRANSCRIPTS:
        pytest.skip(f"only {len(runs)} runs recorded: run it with the whole integration suite")
    assert secrets, "no secret was registered by the labs"
    assert any("ESTABLISH LOCAL CONNECTION" in text for _where, text in recorded)  # -vvvv it was
    leaks = transcripts.leaks(recorded, secrets)
    processes = len(transcripts.run_files("transcripts"))
    print(f"\n[measure] secret scan: {len(runs)} runs and {len(recorded) - len(runs)} registry logs "
          f"from {processes} processes, {len(secrets)} secrets, "
          f"{sum(len(t) for _w, t in recorded) / 2**20:.1f} MiB of text, {len(leaks)} leaks")
    reliability.row("secrets", f"{len(runs)} Ansible runs at -vvvv (output and registered results) and "
                    f"{len(recorded) - len(runs)} registry logs, searched for {len(secrets)} "
                    "passwords and tokens, Authorization values and JWTs", f"{len(leaks)} found")
    assert leaks == []
