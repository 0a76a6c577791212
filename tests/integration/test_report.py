"""The tag report example playbook (issue 3): every tag with digest and creation date, in creation order."""

from __future__ import annotations

import csv
import json

from tests.integration.runner import ROOT, run_ansible
from tests.lab import seed


def test_tag_report(lab_plain, tmp_path):
    session = seed.LabSession(lab_plain)
    pushed = {
        "old-docker": seed.push_image(session, "report/app", "old-docker", kind="docker", created="2021-01-01T00:00:00Z", seed=1),
        "v2": seed.push_index(session, "report/app", "v2", created="2024-06-01T00:00:00Z", seed=2),
        "v1": seed.push_image(session, "report/app", "v1", created="2023-01-01T00:00:00Z", seed=3),
    }
    seed.tag_manifest(session, "report/app", "stable", pushed["v1"]["raw"], pushed["v1"]["media_type"])
    expected = sorted([(tag, p["digest"]) for tag, p in pushed.items()] + [("stable", pushed["v1"]["digest"])],
                      key=lambda t: ({"old-docker": 0, "v1": 1, "stable": 1, "v2": 2}[t[0]], t[0]))
    dest = tmp_path / "report"
    extra = {"report_repository": "report/app", "report_dest": str(dest), "report_connection": lab_plain.conn()}
    proc = run_ansible("ansible-playbook", [str(ROOT / "playbooks" / "tag_report.yml"), "-e", json.dumps(extra)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads((dest / "tags.json").read_text())
    assert [(r["tag"], r["digest"]) for r in rows] == expected
    assert [r["created"] for r in rows] == sorted(r["created"] for r in rows)
    assert rows[-1]["platforms"] == "linux/amd64 linux/arm64/v8"
    with open(dest / "tags.csv", newline="") as handle:
        assert [(r["tag"], r["digest"]) for r in csv.DictReader(handle)] == expected
    markdown = (dest / "tags.md").read_text().splitlines()
    assert len([line for line in markdown if line.startswith("| ") and "sha256:" in line]) == len(expected)
    for tag, digest in expected:  # the printed table
        assert any(tag in line and digest in line for line in proc.stdout.splitlines())
