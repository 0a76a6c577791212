"""Benchmark: the usage report (issue 18) at 20,000 tags. Not a test.

The registry is tests.lab.bulk's 20 repositories of 1,000 tags (100 images each, 10 tags per image), served from the
cached storage as bench/scale.py serves it. Cases: the registry_tags module process with details and blobs (every
repository in one call), the playbook of the facts task alone (bench/scale_facts.yml, the yardstick), and the whole
regops.registry.usage_report playbook with a prune policy (keep the newest tenth), which writes the HTML and JSON.
The report's tasks are timed by bench/callback/regops_task_times.py: the filter's share is its "Compute" task.

    .venv/bin/python bench/usage.py                      (20,000 tags)
    .venv/bin/python bench/usage.py --sizes 1000         (a quick look)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import run_measured, write_results
from scale import SHAPES, describe, playbook, row

from tests.integration.runner import ansible_env, ensure_collection_link
from tests.lab import bulk
from tests.lab.registry import start_registry

MODULE = "registry_tags module process (details, blobs)"
FACTS = "registry_tags playbook run (1 task, details)"
REPORT = "usage_report playbook run (HTML + JSON, prune policy)"
USAGE_PLAYBOOK = "../playbooks/usage_report.yml"  # bench/scale.playbook runs playbooks relative to bench/


def module_process(lab, shape: bulk.Shape, tmp: Path) -> tuple[float, float]:
    args = tmp / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"registry": lab.url, "repositories": shape.names(),
                                                        "details": True, "blobs": True, "sort": "none"}}))
    env = ansible_env({"PYTHONPATH": str(ensure_collection_link())})
    return run_measured([sys.executable, "-m", "ansible_collections.regops.registry.plugins.modules.registry_tags",
                         str(args)], env=env)


def measure(shape: bulk.Shape, tmp: Path) -> tuple[dict, list]:
    rows = {}
    (tmp / "read").mkdir()
    (tmp / "read" / "storage").symlink_to(bulk.cached_storage(shape))
    dest = tmp / "report" / "usage"
    with start_registry("plain", tmp / "read") as lab:
        rows[MODULE] = row(*module_process(lab, shape, tmp))
        seconds, rss, _tasks = playbook("scale_facts.yml", {"registry": lab.url, "repositories": shape.names(),
                                                            "expected": shape.tags}, tmp)
        rows[FACTS] = row(seconds, rss)
        seconds, rss, tasks = playbook(USAGE_PLAYBOOK, {
            "report_connection": {"registry": lab.url}, "report_repositories": shape.names(), "report_dest": str(dest),
            "prune_keep_latest": max(1, shape.images // 10)}, tmp)
        rows[REPORT] = row(seconds, rss)
    numbers = json.loads(dest.with_suffix(".json").read_text())
    assert numbers["tags"] == shape.tags, numbers["tags"]
    assert numbers["prune"]["tags_deleted"] == shape.tags * 9 // 10, numbers["prune"]
    return rows, tasks


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["20000"], choices=list(SHAPES))
    args = parser.parse_args()
    ensure_collection_link()
    groups, peers, notes = {}, {}, []
    started = time.perf_counter()
    for size in args.sizes:
        shape = SHAPES[size]
        with tempfile.TemporaryDirectory(prefix="regops-usage-") as tmp:
            rows, tasks = measure(shape, Path(tmp))
        group = describe(shape)
        groups[group], peers[group] = rows, [FACTS]
        compute = next(seconds for name, seconds in tasks if name.startswith("Compute"))
        notes.append(f"{group}: the usage report takes {rows[REPORT]['median'] / rows[FACTS]['median']:.2f}x the "
                     f"facts playbook; the numbers (usage_summary filter, prune plan included) {compute:.1f} s; "
                     "per task: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in tasks if seconds >= 0.05)
                     + ".")
    notes.append(f"Whole benchmark {time.perf_counter() - started:.0f} s.")
    write_results("usage", "Usage report", groups, peers, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
