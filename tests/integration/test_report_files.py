"""regops.registry.report_files in real ansible-playbook runs: check mode and diff, the write, the rerun that
changes nothing, and no connection to the play's host (its SSH port is closed)."""

from __future__ import annotations

import json

from tests.integration.runner import run_playbook


def test_check_mode_then_write_then_nothing_to_do(tmp_path):
    out = tmp_path / "reports"
    variables = {"out": str(out), "payload": {"title": "Prune plan", "deleted": 3}}

    planned = run_playbook("report_files.yml", variables, check=True, diff=True)
    assert planned.ok, planned.output
    assert planned.results["written"]["changed"] is True
    assert [f["changed"] for f in planned.results["written"]["files"]] == [True, True]
    assert not out.exists()
    assert "+# Prune plan" in planned.output  # the diff shows what would be written

    wrote = run_playbook("report_files.yml", variables)
    assert wrote.ok, wrote.output
    assert json.loads((out / "report.json").read_text()) == variables["payload"]
    assert (out / "new" / "report.md").read_text() == "# Prune plan\n"
    assert [f["path"] for f in wrote.results["written"]["files"]] == [str(out / "report.json"),
                                                                      str(out / "new" / "report.md")]

    again = run_playbook("report_files.yml", variables)
    assert again.ok, again.output
    assert again.results["written"]["changed"] is False
    assert [f["size"] for f in again.results["written"]["files"]] == [(out / name).stat().st_size
                                                                      for name in ("report.json", "new/report.md")]
