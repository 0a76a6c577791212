"""The prune role (issue 5) against a real registry: the role's plan against one computed here, then applied and
checked with skopeo; second run, check mode, the deletion cap, an emptying policy, deletes disabled."""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.runner import run_playbook
from tests.lab import seed
from tests.lab.registry import start_registry

WRITES = ("PUT", "PATCH", "POST", "DELETE")
KEEP_LATEST = 10
POLICY = {"prune_keep_latest": KEEP_LATEST, "prune_keep_tags": [r"^v\d+\.\d+\.\d+$", "^latest$"]}


def expected_kept(truth: dict) -> set[str]:
    """The kept set, from how seed_prune built the repository (not from the planner)."""
    images = truth["images"]
    newest = set(images[-KEEP_LATEST:])  # images are dated one day apart, oldest first; everything else is older
    kept = {t for t, d in truth["tags"].items() if d in newest}
    kept |= {t for t in truth["tags"] if t.startswith("v1.") or t in ("v2.0.0", "latest")}
    kept_digests = {truth["tags"][t] for t in kept}
    # Signatures go with their image: .sig of the newest image and .att of image 0 (kept by v1.0.0) stay.
    kept |= {t for t in truth["tags"] if t.startswith("sha256-") and "sha256:" + t[7:71] in kept_digests}
    return kept


def skopeo(lab, *args) -> subprocess.CompletedProcess:
    cmd = ["skopeo", *args[:1], *lab.skopeo_options(), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def skopeo_tags(lab, repo: str) -> set[str]:
    proc = skopeo(lab, "list-tags", f"docker://{lab.host}/{repo}")
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout)["Tags"])


def prune(lab, repositories, check=False, **extra):
    variables = {"prune_registry": lab.url, "prune_repositories": repositories, **POLICY, **extra}
    conn = lab.conn()
    for key in ("username", "password", "ca_path"):
        if key in conn:
            variables[f"prune_{key}"] = conn[key]
    return run_playbook("prune.yml", variables, check=check)


@pytest.fixture(scope="module")
def pruning_lab(tmp_path_factory):
    lab = start_registry("plain", tmp_path_factory.mktemp("lab-prune"))
    try:
        truth = seed.seed_prune(seed.LabSession(lab), repositories=20)
        yield lab, truth
    finally:
        lab.close()


def test_prune_plan_apply_and_rerun(pruning_lab, tmp_path):
    lab, truth = pruning_lab
    assert len(truth) >= 20 and all(len(t["tags"]) == 50 for t in truth.values())
    report = tmp_path / "prune-report"

    # Check mode: the whole plan and the report, no write.
    mark = lab.mark()
    checked = prune(lab, ["^prune/"], check=True, prune_max_deletions=5000, prune_report_path=str(report))
    assert checked.ok, checked.output[-3000:]
    assert lab.count(mark, WRITES) == {}
    assert all(skopeo_tags(lab, repo) == set(t["tags"]) for repo, t in list(truth.items())[:3])
    plans = {p["repository"]: p for p in checked.results["repositories"]}
    assert set(plans) == set(truth)
    for repo, t in truth.items():  # the role's plan is the independent one
        assert set(plans[repo]["keep_tags"]) == expected_kept(t), repo
    saved = json.loads(report.with_suffix(".json").read_text())
    assert saved["check_mode"] is True and len(saved["repositories"]) == 20
    markdown = report.with_suffix(".md").read_text()
    assert markdown.count("| delete (") == sum(p["summary"]["deleted"] for p in plans.values())
    assert "garbage" in markdown and "| build-0 | delete (tag) |" in markdown  # build-0's image stays for v1.0.0

    # Apply.
    mark = lab.mark()
    run = prune(lab, ["^prune/"], prune_max_deletions=5000, prune_report_path=str(report) + ".md")
    assert run.ok, run.output[-3000:]
    assert run.results["changed"] and run.results["summary"]["deleted"] == sum(
        len(t["tags"]) - len(expected_kept(t)) for t in truth.values())
    assert lab.count(mark, ("PUT",)).get("PUT", 0) <= 40 * 20  # throwaway markers only, no blob uploads
    assert lab.blob_uploads(mark) == []

    for repo, t in truth.items():
        assert skopeo_tags(lab, repo) == expected_kept(t), repo
    kept_refs = [f"{repo}:{tag}" for repo, t in truth.items() for tag in expected_kept(t)]
    with ThreadPoolExecutor(max_workers=4) as pool:  # every kept tag still pulls: manifest, platform and config
        failures = [r for r, proc in zip(kept_refs, pool.map(
            lambda ref: skopeo(lab, "inspect", f"docker://{lab.host}/{ref}"), kept_refs)) if proc.returncode]
    assert failures == []
    session = seed.LabSession(lab)
    for repo, t in truth.items():
        for child in t["index_kept"]["children"]:  # children of a kept index stay (one was tagged and lost its tag)
            assert seed.head_manifest(session, repo, child["digest"]) == child["digest"]
        gone = [c["digest"] for c in t["index_old"]["children"]] + [t["index_old"]["attestation"]["digest"]]
        assert all(seed.head_manifest(session, repo, d) is None for d in gone)  # none orphaned
        assert seed.head_manifest(session, repo, t["images"][1]) is None  # image 1 went, and its .sig with it

    # Second run: nothing to do, no write.
    mark = lab.mark()
    again = prune(lab, ["^prune/"], prune_max_deletions=5000)
    assert again.ok and not again.results["changed"] and again.results["summary"]["deleted"] == 0
    assert lab.count(mark, WRITES) == {}


def test_plan_above_the_cap_fails_before_the_first_delete(lab_plain):
    truth = seed.seed_prune(seed.LabSession(lab_plain), repositories=2, prefix="capped")
    mark = lab_plain.mark()
    run = prune(lab_plain, list(truth), prune_max_deletions=10)
    assert not run.ok and "more than prune_max_deletions (10)" in run.output and "nothing was deleted" in run.output
    assert lab_plain.count(mark, WRITES) == {}
    assert all(skopeo_tags(lab_plain, repo) == set(t["tags"]) for repo, t in truth.items())

    mark = lab_plain.mark()
    emptying = prune(lab_plain, [next(iter(truth))], prune_keep_latest=0, prune_keep_tags=[], prune_max_deletions=500)
    assert not emptying.ok and "deletes every tag of capped/r00" in emptying.output
    assert lab_plain.count(mark, WRITES) == {}


def test_deletes_disabled_fails_before_the_first_delete(tmp_path_factory):
    lab = start_registry("plain", tmp_path_factory.mktemp("lab-nodelete"), delete_enabled=False)
    try:
        truth = seed.seed_prune(seed.LabSession(lab), repositories=1, prefix="nodel")
        (repo, t), = truth.items()
        mark = lab.mark()
        run = prune(lab, [repo], prune_max_deletions=500)
        assert not run.ok and "deletes disabled" in run.output and "Traceback" not in run.output
        assert [r.method for r in lab.writes(mark)] == ["DELETE"]  # the probe of a digest that cannot exist
        assert skopeo_tags(lab, repo) == set(t["tags"])
    finally:
        lab.close()


def test_prune_with_token_auth(lab_token):
    truth = seed.seed_prune(seed.session_for(lab_token), repositories=2, prefix="tokprune")
    run = prune(lab_token, ["^tokprune/"], prune_max_deletions=500)
    assert run.ok, run.output[-3000:]
    session = seed.session_for(lab_token)
    for repo, t in truth.items():
        assert set(seed.list_tags(session, repo)) == expected_kept(t)


DELETE_TASK = "Delete, one concurrent call for all the repositories"


def changed_tasks(output: str) -> list[str]:
    """The names of the tasks with a result reported changed (the PLAY RECAP would count a run_once task once per
    host)."""
    assert "PLAY RECAP" in output, output[-2000:]
    sections = re.split(r"^TASK \[(?:regops\.registry\.prune : )?(.+?)\] \**$", output, flags=re.MULTILINE)
    return [name for name, body in zip(sections[1::2], sections[2::2]) if re.search(r"^changed: \[", body, re.MULTILINE)]


def test_report_is_written_once_on_the_controller_and_a_rerun_changes_nothing(lab_plain, tmp_path):
    session = seed.LabSession(lab_plain)
    repo = "nightly/app"
    for i, day in enumerate(("01", "02", "03")):
        image = seed.push_image(session, repo, f"build-{i}", seed=800 + i, created=f"2024-01-{day}T00:00:00Z")
        seed.tag_manifest(session, repo, f"pr-{i}", image["raw"], image["media_type"])
    report = tmp_path / "nightly"
    variables = {"prune_registry": lab_plain.url, "prune_repositories": [repo], "prune_keep_latest": 1,
                 "prune_report_path": str(report), "prune_hosts": ["ci-runner-a", "ci-runner-b"]}

    def nightly(check: bool, **extra):
        run = run_playbook("prune_elsewhere.yml", {**variables, **extra}, check=check)
        assert run.ok, run.output[-3000:]
        return run

    first = nightly(True)  # two target hosts, neither localhost: one report, written by the controller
    reports = ["Write the report (JSON and Markdown)"]
    section = first.output.split(f"TASK [regops.registry.prune : {reports[0]}]", 1)[1].split("TASK [", 1)[0]
    assert re.findall(r"^(?:ok|changed): \[([^\]]+)\]", section, re.MULTILINE) == ["ci-runner-a"]
    assert changed_tasks(first.output) == reports + [DELETE_TASK]
    assert json.loads(report.with_suffix(".json").read_text())["check_mode"] is True
    # Same plan in check mode: the reports stay as they are; only what check mode says would be deleted shows.
    assert changed_tasks(nightly(True).output) == [DELETE_TASK]

    one_host = {"prune_hosts": ["ci-runner-a"]}
    applied = nightly(False, **one_host)
    assert applied.results["summary"]["deleted"] == 4 and changed_tasks(applied.output) == reports + [DELETE_TASK]
    assert skopeo_tags(lab_plain, repo) == {"build-2", "pr-2"}
    rerun = nightly(False, **one_host)  # the plan changed (the deleted tags are gone): the report says so
    assert changed_tasks(rerun.output) == reports
    stamped = json.loads(report.with_suffix(".json").read_text())["planned_at"]
    again = nightly(False, **one_host)
    assert changed_tasks(again.output) == []
    assert json.loads(report.with_suffix(".json").read_text())["planned_at"] == stamped  # since when it is the same
