"""No module documents, and no filter returns, a key that Ansible reserves (design: a list named ``skipped`` turns a
successful task into "skipping"). What the modules really return is checked over the integration suite's results by
tests/integration/test_zz_return_keys.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ansible_collections.regops.registry.plugins.filter.prune import retention_deletes, retention_plan, retention_report

ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("registry_*.py"))
# The registry modules and the controller-side ones (report_files: an action plugin, documented as a module).
ALL_MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
# Keys Ansible itself adds to or reads from every result, each with one meaning: never a RETURN of ours.
ANSIBLE_KEYS = {"changed", "failed", "msg", "invocation", "diff", "warnings", "deprecations", "exception"}
# Keys that make Ansible read a result as something else.
RESERVED = {"skipped", "results", "rc", "unreachable", "ansible_facts", "stdout", "stderr", "stdout_lines",
            "stderr_lines", "skip_reason"}


def documented(module: str) -> dict:
    """The module's RETURN, parsed."""
    tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
    text = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "RETURN" for t in node.targets))
    return yaml.safe_load(text) or {}


@pytest.mark.parametrize("module", ALL_MODULES)
def test_documented_return_uses_no_reserved_key(module):
    docs = documented(module)
    assert docs, f"{module} documents no RETURN"
    assert sorted((RESERVED | ANSIBLE_KEYS) & set(docs)) == []
    for key, doc in docs.items():  # a per-repository entry is read by users as a result too
        assert not set(str(doc.get("description")).split("C(")) & {f"{k})" for k in RESERVED}, key


def test_prune_filters_return_no_reserved_key():
    images = [{"tag": "old", "digest": "sha256:" + "1" * 64, "created": "2024-01-01T00:00:00Z", "size": 1},
              {"tag": "new", "digest": "sha256:" + "2" * 64, "created": "2024-02-01T00:00:00Z", "size": 1}]
    plan = retention_plan(images, keep_latest=1, repository="a", now="2024-03-01T00:00:00Z")
    outputs = [plan, plan["summary"], retention_deletes(plan), retention_report({"plan": plan})] + plan["tags"]
    assert [sorted((RESERVED | ANSIBLE_KEYS) & set(o)) for o in outputs] == [[]] * len(outputs)
