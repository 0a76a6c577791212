"""Last file of the suite: no password, token or Authorization value anywhere in what the session saw.

Every Ansible run of the suite is recorded at -vvvv (tests/integration/runner.py), with its registered results;
every lab's registry log is recorded when the lab closes, and the logs of the labs still running are read here.
The secrets are every lab password (and its base64 Basic form) and every token or refresh token the token server
issued during the session.
"""

from __future__ import annotations

import pytest

from tests.lab import registry, reliability, transcripts

# Runs of the whole suite record a few hundred transcripts; fewer means this file ran alone.
MIN_TRANSCRIPTS = 40


def test_the_scanner_finds_what_it_looks_for():
    planted = [("planted", "msg: 'pw-4711 refused'"), ("header", "{'Authorization': 'Bearer abcdefghijkl'}"),
               ("jwt", "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig")]
    found = transcripts.leaks(planted, {"pw-4711"})
    assert [f.split(":")[0] for f in found] == ["planted", "header", "jwt"]
    assert transcripts.leaks([("clean", "Authorization: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")], {"pw-4711"}) == []


def test_no_secret_in_any_output_result_or_registry_log():
    for lab in list(registry._RUNNING):  # pylint: disable=protected-access  # session labs close after this test
        if lab.log_path.exists():
            transcripts.record(f"registry log ({lab.mode} {lab.url})", lab.log_path.read_text(errors="replace"))
    runs = [where for where, _text in transcripts.TRANSCRIPTS if not where.startswith("registry log")]
    if len(runs) < MIN_TRANSCRIPTS:
        pytest.skip(f"only {len(runs)} runs recorded: run it with the whole integration suite")
    assert transcripts.SECRETS, "no secret was registered by the labs"
    assert any("ESTABLISH LOCAL CONNECTION" in text for _where, text in transcripts.TRANSCRIPTS)  # -vvvv it was
    leaks = transcripts.leaks()
    print(f"\n[measure] secret scan: {len(runs)} runs and "
          f"{len(transcripts.TRANSCRIPTS) - len(runs)} registry logs, {len(transcripts.SECRETS)} secrets, "
          f"{sum(len(t) for _w, t in transcripts.TRANSCRIPTS) / 2**20:.1f} MiB of text, {len(leaks)} leaks")
    reliability.row("secrets", f"{len(runs)} Ansible runs at -vvvv (output and registered results) and "
                    f"{len(transcripts.TRANSCRIPTS) - len(runs)} registry logs, searched for {len(transcripts.SECRETS)} "
                    "passwords and tokens, Authorization values and JWTs", f"{len(leaks)} found")
    assert leaks == []
