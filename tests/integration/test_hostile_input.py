"""Hostile and wrong input through real ansible-playbook runs (issue 7): each case is a failed task with a message
a user can act on, no traceback, no request that writes, and no tag lost (skopeo list-tags before and after).

Modes and registries that refuse are covered here too: wrong or missing credentials, a token without the scope,
an unknown CA, and validate_certs false (which works, and says so). Deletes disabled and read-only registries are in
test_modules.py; a policy that would empty a repository is in test_prune.py. All of them add rows to the
reliability table (tests/lab/reliability.py).
"""

from __future__ import annotations

import pytest

from tests.integration.runner import run_adhoc, run_playbook
from tests.lab import reliability, seed
from tests.lab.registry import start_registry

WRITES = ("PUT", "PATCH", "POST", "DELETE")
REPO = "it/hostile"
A_DIGEST = "sha256:" + "a" * 64

# (module, options, what the message must say)
MODULE_CASES = [
    ("registry_catalog", {"filter": "*x"}, "filter: '*x' is not a valid regular expression"),
    ("registry_catalog", {"page_size": -5}, "page_size must be at least 1"),
    ("registry_catalog", {"page_size": 10 ** 9}, "page_size must be at most 10000"),
    ("registry_tags", {"repository": "Bad/Repo"}, "repository names must be lowercase"),
    ("registry_tags", {"repository": "a//b"}, "invalid repository name 'a//b'"),
    ("registry_tags", {"repository": "x" * 300}, "longer than 255 characters"),
    ("registry_tags", {"repository": "it/hostile", "filter": "(["}, "is not a valid regular expression"),
    ("registry_tags", {"repository": REPO, "page_size": 0}, "page_size must be at least 1"),
    ("registry_tags", {"repository": REPO, "page_size": 100000}, "page_size must be at most 10000"),
    ("registry_tags", {"repository": REPO, "concurrency": 1000}, "concurrency must be at most 64"),
    ("registry_tags", {"repository": REPO, "sort": "random"}, "value of sort must be one of"),
    ("registry_tags", {"repositories": ["ok/one", "Bad Name"]}, "invalid repository name"),
    ("registry_manifest", {"repository": REPO, "reference": "-bad"}, "invalid tag '-bad'"),
    ("registry_manifest", {"repository": REPO, "reference": "sha256:xyz"}, "invalid digest 'sha256:xyz'"),
    ("registry_manifest", {"repository": REPO, "tag": "v9", "source": "it/hostile:bad tag"}, "invalid"),
    ("registry_manifest", {"repository": REPO, "tag": "v9", "source": "Upper/Case:1"}, "lowercase"),
    ("registry_manifest", {"repository": REPO, "tag": "v9", "content": "not json"}, "content"),
    ("registry_manifest", {"repository": REPO, "tag": "t" * 129, "source": "v1"}, "invalid tag"),
    ("registry_delete", {"repository": REPO, "tags": [".x"]}, "invalid tag '.x'"),
    ("registry_delete", {"repository": REPO, "tags": ["t" * 129]}, "invalid tag"),
    ("registry_delete", {"repository": REPO, "digests": ["sha256:xyz"]}, "invalid digest 'sha256:xyz'"),
    ("registry_delete", {"repository": REPO, "digests": ["sha256:" + "A" * 64]}, "lowercase hex"),
    ("registry_delete", {"repository": REPO, "digests": ["md5:" + "a" * 32]}, "only sha256 and sha512 digests"),
    ("registry_manifest", {"repository": REPO, "reference": "md5:" + "a" * 32}, "only sha256 and sha512 digests"),
    ("registry_delete", {"repository": REPO, "blobs": ["not-a-digest"]}, "invalid digest"),
    ("registry_delete", {"repository": REPO, "tags": ["v1"], "protect_tags": ["(["]}, "invalid tag '(['"),
    ("registry_blob_upload", {"repository": REPO, "path": "/nonexistent/file"}, "not a readable file"),
    ("registry_blob_upload", {"repository": REPO, "path": "/etc/hostname", "digest": "sha256:1"}, "invalid digest"),
    ("registry_blob_upload", {"repository": REPO, "source": "other/repo"}, "source needs digest"),
    ("registry_blob_upload", {"repository": REPO, "source": "../../etc", "digest": A_DIGEST}, "invalid"),
]


def _seeded_lab(mode: str, tmp_path_factory):
    """A registry with v1 and v2 on one image and v3 on another."""
    lab = start_registry(mode, tmp_path_factory.mktemp(f"lab-hostile-{mode}"))
    try:
        session = seed.LabSession(lab)
        image = seed.push_image(session, REPO, "v1", seed=81)
        seed.tag_manifest(session, REPO, "v2", image["raw"], image["media_type"])
        seed.push_image(session, REPO, "v3", seed=82)
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def hostile_lab(tmp_path_factory):
    yield from _seeded_lab("plain", tmp_path_factory)


def test_bad_module_input_fails_each_task_and_changes_nothing(hostile_lab):
    lab = hostile_lab
    before = reliability.snapshot(lab, [REPO])
    cases: dict[str, list[dict]] = {m: [] for m, _o, _s in MODULE_CASES}
    for module, options, _message in MODULE_CASES:
        cases[module].append(options)
    mark = lab.mark()
    run = run_playbook("hostile.yml", {"conn": lab.conn(), "cases": cases})
    assert run.ok, run.output[-3000:]  # every failure is ignored per item: the play itself completes
    assert "Traceback" not in run.output
    seen: dict[str, int] = {}
    for module, options, message in MODULE_CASES:
        index = seen[module] = seen.get(module, -1) + 1
        result = run.results[module]["results"][index]
        assert result.get("failed") is True, (module, options, result)
        assert message in result.get("msg", ""), (module, options, result.get("msg"))
        # At -vvvv ansible-core 2.19 adds "exception": "(traceback unavailable)" to every fail_json: no traceback.
        assert "Traceback" not in result.get("exception", "") and "module_stderr" not in result, result
        reliability.row("bad input", f"{module}: {result['msg']}", "failed task, no request sent")
    assert lab.requests(mark) == []  # not even a ping: every case failed on its input
    assert reliability.lost(before, reliability.snapshot(lab, [REPO])) == 0


def test_a_delete_naming_a_protected_tag_deletes_nothing(hostile_lab):
    lab = hostile_lab
    before = reliability.snapshot(lab, [REPO])
    mark = lab.mark()
    run = run_adhoc("registry_delete", {**lab.conn(), "repository": REPO, "tags": ["v1", "v3"],
                                        "protect_tags": ["v3"]})
    assert run.rc != 0 and "remove v3, which must stay" in run.results.get("msg", ""), run.output[-3000:]
    assert "nothing was deleted" in run.results["msg"]
    assert "Traceback" not in run.output
    assert lab.count(mark, WRITES) == {}
    lost = reliability.lost(before, reliability.snapshot(lab, [REPO]))
    assert lost == 0
    reliability.row("bad input", "registry_delete naming a tag that protect_tags keeps",
                    f"failed task: \"{run.results['msg']}\"", tags_lost=lost)


# (policy variables of the prune role, what the message must say)
POLICY_CASES = [
    ({"prune_keep_latest": -1}, "keep_latest"),
    ({"prune_older_than": "soon"}, "older_than"),
    ({"prune_order": "random"}, "order"),
    ({"prune_match_tags": ["(["]}, "not a valid regular expression"),
    ({"prune_group_by": "^[a-z]+$"}, "group_by"),
    ({"prune_repositories": ["Bad Repo"]}, "invalid repository name"),
    ({"prune_repositories": []}, "must name at least one repository"),
    ({"prune_max_deletions": -1}, "prune_max_deletions must not be negative"),
    ({"prune_keep_latest": 0, "prune_keep_tags": []}, "every tag"),
]


@pytest.mark.parametrize("policy,message", POLICY_CASES, ids=[m for _p, m in POLICY_CASES])
def test_bad_prune_policy_fails_before_any_delete(hostile_lab, policy, message):
    lab = hostile_lab
    before = reliability.snapshot(lab, [REPO])
    mark = lab.mark()
    variables = {"prune_registry": lab.url, "prune_repositories": [REPO], "prune_keep_latest": 1, **policy}
    run = run_playbook("prune.yml", variables)
    assert not run.ok and message in run.output, run.output[-3000:]
    assert "Traceback" not in run.output
    assert lab.count(mark, WRITES) == {}
    lost = reliability.lost(before, reliability.snapshot(lab, [REPO]))
    assert lost == 0
    reliability.row("bad input", f"prune role: {', '.join(f'{k}={v!r}' for k, v in policy.items())}",
                    "failed task, message, nothing deleted", tags_lost=lost)


@pytest.fixture(scope="module")
def basic_lab(tmp_path_factory):
    yield from _seeded_lab("basic", tmp_path_factory)


def _refused(lab, case: str, options: dict, message: str, module: str = "registry_delete") -> None:
    before = reliability.snapshot(lab, [REPO])
    mark = lab.mark()
    run = run_adhoc(module, {"repository": REPO, "tags": ["v1"], **options})
    assert run.rc != 0 and message in run.results.get("msg", ""), run.output[-3000:]
    assert "Traceback" not in run.output
    assert [r for r in lab.requests(mark) if r.method in WRITES] == []
    lost = reliability.lost(before, reliability.snapshot(lab, [REPO]))
    assert lost == 0
    reliability.row("refusing registry", case, f"failed task: \"{run.results['msg']}\"", tags_lost=lost,
                    mode=lab.mode)


def test_missing_credentials(basic_lab):
    _refused(basic_lab, "no credentials for a Basic registry", {"registry": basic_lab.url, "ca_path": basic_lab.ca_path},
             "requires a username and password")


def test_unknown_ca(basic_lab):
    options = {"registry": basic_lab.url, "username": "alice", "password": basic_lab.users["alice"]}
    _refused(basic_lab, "TLS with an unknown CA", options, "certificate")


def test_validate_certs_false_works_and_deletes_only_what_was_asked(basic_lab):
    lab = basic_lab
    before = reliability.snapshot(lab, [REPO])
    run = run_adhoc("registry_delete", {"registry": lab.url, "username": "alice", "password": lab.users["alice"],
                                        "validate_certs": False, "repository": REPO, "tags": ["v2"]})
    assert run.rc == 0 and run.results.get("changed") is True, run.output[-3000:]
    assert "TLS certificate verification is disabled" in run.output
    after = reliability.snapshot(lab, [REPO])
    assert after[REPO] == before[REPO] - {"v2"}
    lost = reliability.lost(before, after, {REPO: {"v2"}})
    reliability.row("refusing registry", "TLS with an unknown CA and validate_certs: false",
                    "works; only the tag asked for is deleted", tags_lost=lost, mode=lab.mode)
