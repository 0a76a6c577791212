"""Every YAML example of the README, the guides and the role READMEs still parses and means what it says.

Playbooks and task lists go through ``ansible-playbook --syntax-check`` (all in one run); prune policies through
the retention planner (a wrong term or regex fails there); the inventory example through the plugin's own option
list. Result samples only need to be YAML. (Running each example against a lab is the next step, issue 8.)
"""

from __future__ import annotations

import json
import re

import yaml

from tests.integration.runner import ROOT, run_ansible

SOURCES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
           *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "roles").glob("*/README.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
ROLE_TERMS = {"prune_keep_latest": "keep_latest", "prune_group_by": "group_by", "prune_keep_tags": "keep_tags",
              "prune_match_tags": "match_tags", "prune_older_than": "older_than", "prune_order": "order"}


def examples() -> list[tuple[str, object]]:
    found = []
    for source in SOURCES:
        for number, match in enumerate(BLOCK.finditer((ROOT / source).read_text()), 1):
            found.append((f"{source} example {number}", yaml.safe_load(match.group(1))))
    return found


def is_play(item) -> bool:
    return isinstance(item, dict) and ("hosts" in item or "import_playbook" in item)


def test_every_playbook_and_task_list_passes_syntax_check(tmp_path):
    paths = []
    for name, data in examples():
        if not isinstance(data, list):
            continue
        plays = data if all(is_play(item) for item in data) else [{"hosts": "localhost", "gather_facts": False,
                                                                   "tasks": data}]
        path = tmp_path / f"{len(paths):02d}.yml"
        path.write_text(f"# {name}\n" + yaml.safe_dump(plays, sort_keys=False))
        paths.append(path)
    assert len(paths) >= 10
    proc = run_ansible("ansible-playbook", ["--syntax-check", *map(str, paths)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_prune_policy_is_one_the_planner_accepts():
    from ansible_collections.regops.registry.plugins.filter.prune import retention_plan

    policies = [(name, data) for name, data in examples()
                if isinstance(data, dict) and data and all(k.startswith("prune_") for k in data)]
    assert len(policies) >= 3
    for name, policy in policies:
        terms = {ROLE_TERMS[k]: v for k, v in policy.items() if k in ROLE_TERMS}
        assert terms, name
        plan = retention_plan([], repository="docs/example", **terms)  # raises on a wrong term, regex or duration
        assert plan["keep_tags"] == [] and plan["delete_tags"] == [], name


def test_the_inventory_example_uses_only_options_the_plugin_has():
    proc = run_ansible("ansible-doc", ["-t", "inventory", "--json", "regops.registry.registry"], local=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)["regops.registry.registry"]["doc"]
    options = set(doc["options"])  # with the doc fragments' (connection, constructed, inventory cache)
    configs = [(name, data) for name, data in examples()
               if isinstance(data, dict) and data.get("plugin") == "regops.registry.registry"]
    assert configs
    for name, config in configs:
        assert set(config) - {"plugin"} <= options, (name, set(config) - options)
