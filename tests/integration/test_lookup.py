"""The digest lookup against real registries, compared with skopeo (issue 3)."""

from __future__ import annotations

import subprocess

from tests.integration.runner import run_playbook
from tests.lab import seed


def skopeo_digest(lab, reference: str) -> str:
    cmd = ["skopeo", "inspect", "--format", "{{.Digest}}", *lab.skopeo_options()]
    return subprocess.run(cmd + [f"docker://{reference}"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def test_digest_lookup_matches_skopeo(lab):
    session = seed.LabSession(lab)
    image = seed.push_image(session, "lookup/app", "1.0", seed=90)
    index = seed.push_index(session, "lookup/app", "multi", seed=91)
    conn = lab.conn()
    run = run_playbook("lookup.yml", {"conn": conn, "ref_tag": f"{lab.host}/lookup/app:1.0",
                                      "ref_index": f"{lab.host}/lookup/app:multi",
                                      "ref_missing": f"{lab.host}/lookup/app:nope"})
    assert run.ok, run.output
    digests = run.results["digests"]
    assert digests["tag"] == image["digest"] == skopeo_digest(lab, f"{lab.host}/lookup/app:1.0")
    assert digests["index"] == index["digest"]
    assert digests["arm64"] == index["children"][1]["digest"]
    missing = run.results["missing"]
    assert missing["failed"] and "lookup/app:nope does not exist" in missing["msg"]
    assert "Traceback" not in run.output
