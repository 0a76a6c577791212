"""Late in the suite: every result a regops.registry module really returned (the playbooks' tasks through the test
callback tests/integration/callback/regops_results.py, and every run_module) against the module's RETURN, and against
the keys Ansible reserves.

A key returned but not documented fails; a key documented ``returned: always`` (or ``success``) but missing from a
successful result fails. The first test runs each module once in each of its modes, so the check never rests on
nothing when this file runs alone; with the whole suite it covers every module call of the run, from every pytest
process of it (the last test is ``whole_run``: see tests/integration/conftest.py).
"""

from __future__ import annotations

import ast

import pytest
import yaml

from tests.integration.runner import RESULTS_KIND, ROOT, run_module
from tests.lab import seed, transcripts

from tests.unit.plugins.test_reserved_keys import ANSIBLE_KEYS, MODULES, RESERVED

ALWAYS = ("always", "success")


def documented(module: str) -> dict:
    """The module's RETURN, parsed (top-level keys with their docs)."""
    tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
    text = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "RETURN" for t in node.targets))
    return yaml.safe_load(text) or {}


def collected() -> list[dict]:
    """Every module result every process of this run recorded."""
    return transcripts.read_lines(RESULTS_KIND)


def reserved_misuse(entry: dict) -> list[str]:
    """What in one real result Ansible would misread."""
    result, problems = entry["result"], []
    if entry["status"] == "skipped" and "skip_reason" in result:
        return []  # a task skipped by its when: no module ran
    if entry["status"] == "skipped":
        problems.append("Ansible read the result as skipped")
    problems += [f"reserved key {k!r}" for k in sorted(RESERVED & set(result))]
    if not isinstance(result.get("changed", False), bool):
        problems.append(f"changed is {type(result['changed']).__name__}, not the change flag")
    if "msg" in result and not isinstance(result["msg"], str):
        problems.append("msg is not a message")
    if entry["status"] == "ok" and result.get("failed", False) is not False:
        problems.append("failed set on a success")
    if set(result.get("invocation") or {}) - {"module_args"}:
        problems.append("invocation holds more than Ansible's module_args")
    return problems


def loop_keys(result: dict) -> set[str]:
    """What Ansible adds to the result of a loop item: the loop and index variables, named or by default."""
    names = {"ansible_loop_var", "ansible_index_var", "ansible_loop"}
    return names | {result.get("ansible_loop_var", "item")} | ({result["ansible_index_var"]}
                                                               if "ansible_index_var" in result else set())


def return_mismatch(entry: dict) -> list[str]:
    """A successful result's keys against its module's RETURN."""
    if entry["status"] != "ok":
        return []
    docs = documented(entry["module"])
    ignored = ANSIBLE_KEYS | (loop_keys(entry["result"]) if "ansible_loop_var" in entry["result"] else set())
    keys = {k for k in entry["result"] if not k.startswith("_ansible") and k not in ignored}
    problems = [f"{k!r} returned but not documented" for k in sorted(keys - set(docs))]
    always = {k for k, doc in docs.items() if str(doc.get("returned", "")).strip() in ALWAYS}
    problems += [f"{k!r} documented as returned {docs[k]['returned']} but missing" for k in sorted(always - keys)]
    return problems


def test_every_module_in_every_mode_returns_what_it_documents(lab_plain, tmp_path):
    """One call of each module in each mode (read, write, check mode, second run, several repositories)."""
    session = seed.LabSession(lab_plain)
    repo = "returns/app"
    image = seed.push_image(session, repo, "v1", seed=900)
    seed.tag_manifest(session, repo, "v1-copy", image["raw"], image["media_type"])
    seed.tag_manifest(session, repo, "pr-1", image["raw"], image["media_type"])
    blob = tmp_path / "blob"
    blob.write_bytes(b"a blob for the return keys" * 100)
    conn = lab_plain.conn()
    calls = [
        ("registry_catalog", {}, False),
        ("registry_tags", {"repository": repo}, False),
        ("registry_tags", {"repository": repo, "details": True}, False),
        ("registry_tags", {"repositories": [repo], "details": True}, False),
        ("registry_manifest", {"repository": repo, "reference": "v1"}, False),
        ("registry_manifest", {"repository": repo, "tag": "content", "content": image["manifest"]}, True),
        ("registry_manifest", {"repository": repo, "tag": "content", "content": image["manifest"]}, False),
        ("registry_manifest", {"repository": "returns/other", "tag": "v1", "source": f"{repo}:v1"}, True),
        ("registry_manifest", {"repository": "returns/other", "tag": "v1", "source": f"{repo}:v1"}, False),
        ("registry_manifest", {"source": f"{repo}:v1", "targets": [{"repository": "returns/other", "tag": "v2"}]}, False),
        ("registry_blob_upload", {"repository": repo, "path": str(blob)}, False),
        ("registry_delete", {"repository": repo, "tags": ["pr-1"]}, True),
        ("registry_delete", {"repository": repo, "tags": ["pr-1"]}, False),
        ("registry_delete", {"repository": repo, "tags": ["pr-1"]}, False),  # absent now
        ("registry_delete", {"repositories": [{"repository": "returns/other", "tags": ["v1"],
                                               "expected_tags": {"v1": image["digest"]}}]}, True),
        ("registry_sync", {"images": [{"repository": repo, "target": "returns/mirror", "exclude": ["^pr-"]}]}, True),
        ("registry_sync", {"images": [{"repository": repo, "target": "returns/mirror"}], "delete_extra": True}, False),
    ]
    for module, args, check in calls:
        result, _rss = run_module(module, {**conn, **args}, check=check)
        assert not result.get("failed"), (module, args, result)
    mine = [e for e in collected() if e["result"].get("invocation", {}).get("module_args", {}).get("registry") == conn["registry"]]
    assert {e["module"] for e in mine} == set(MODULES)
    problems = [f"{e['module']}: {p}" for e in mine for p in reserved_misuse(e) + return_mismatch(e)]
    assert problems == [], "\n".join(problems)


@pytest.mark.whole_run
def test_every_result_the_suite_got_matches_return_and_reserved_keys():
    entries = collected()
    assert entries, "no module result was recorded (tests/integration/runner.py records them)"
    problems = sorted({f"{e['module']}: {p}" for e in entries for p in reserved_misuse(e) + return_mismatch(e)})
    print(f"\n[measure] return keys: {len(entries)} results of {len({e['module'] for e in entries})} modules checked, "
          f"recorded by {len(transcripts.run_files(RESULTS_KIND))} processes")
    assert problems == [], "\n".join(problems)
