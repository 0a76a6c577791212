"""Benchmark: the tag report playbook and the inventory plugin at 20,000 tags (one repository, 2,000 images).

Whole runs as a user starts them (ansible-playbook, ansible-inventory --list), next to the facts alone (the report's
first task, bench/facts.yml) so the report's own cost shows. ``--before REV`` adds the same runs with the playbook
and inventory plugin of git revision REV (a copy of this tree with those two files from REV), for a before/after
comparison. The registry is seeded once and kept (bench/scale_lab.py). Not a test.

    .venv/bin/python bench/report_scale.py [--rounds 1] [--before main]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import ROOT, measure_rounds, run_measured, summarise, write_results
from scale_lab import seeded_lab

from tests.integration.runner import ansible_env, ensure_collection_link

REPOSITORY = "scale/app"
IMAGES, TAGS_PER_IMAGE = 2000, 10
CHANGED_FILES = ("playbooks/tag_report.yml", "plugins/inventory/registry.py")
# The plugin's EXAMPLES: a composed variable and two keyed groups, templated per host.
CONSTRUCTED = {"keyed_groups": [{"key": "registry_image_architectures", "prefix": "arch"},
                                {"key": "registry_image_labels['build'] | default('none')", "prefix": "build"}],
               "compose": {"image_pin": "registry_image_repository ~ '@' ~ registry_image_digest"}}


def collection_at(revision: str, work: Path) -> Path:
    """A collections path holding this tree with the changed files as they were at ``revision``."""
    tree = work / "ansible_collections" / "regops" / "registry"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".tmp", ".venv", ".git", "tests", "docs", "bench"))
    for path in CHANGED_FILES:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{path}"], capture_output=True, text=True,
                              check=True).stdout
        (tree / path).write_text(text)
    return work


def inventory_config(work: Path, lab, name: str, constructed: bool) -> Path:
    config = {"plugin": "regops.registry.registry", "registry": lab.url, "repositories": [REPOSITORY],
              "concurrency": 16, **(CONSTRUCTED if constructed else {})}
    path = work / f"{name}.registry.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", help="git revision whose playbook and inventory plugin to measure as well")
    parser.add_argument("--cases", default="", help="only the cases whose name matches this regular expression")
    args = parser.parse_args()
    ensure_collection_link()
    lab = seeded_lab("report-20k", {REPOSITORY: (IMAGES, TAGS_PER_IMAGE)})
    work = Path(tempfile.mkdtemp(prefix="regops-report-scale-"))
    tags = len(lab.seeded[REPOSITORY])
    bin_dir = Path(sys.executable).parent
    try:
        trees = {"": None}
        if args.before:
            trees[f" [{args.before}]"] = collection_at(args.before, work / "before")

        def playbook(path: Path, tree: Path | None, **extra):
            env = ansible_env({"ANSIBLE_COLLECTIONS_PATH": str(tree)} if tree else None)
            variables = {"report_repository": REPOSITORY, "report_dest": str(work / "report"),
                         "report_connection": {"registry": lab.url}, "registry": lab.url,
                         "repository": REPOSITORY, "expected": tags, **extra}
            return lambda: run_measured([str(bin_dir / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                                         str(path), "-e", json.dumps(variables)], env=env)

        def inventory(config: Path, tree: Path | None):
            env = ansible_env({"ANSIBLE_COLLECTIONS_PATH": str(tree)} if tree else None)
            return lambda: run_measured([str(bin_dir / "ansible-inventory"), "-i", str(config), "--list"], env=env)

        cases = {"registry_tags details alone (the report's first task)": playbook(ROOT / "bench" / "facts.yml", None)}
        for label, tree in trees.items():
            root = tree / "ansible_collections" / "regops" / "registry" if tree else ROOT
            cases[f"tag_report playbook, whole run{label}"] = playbook(root / "playbooks" / "tag_report.yml", tree)
        for label, tree in trees.items():
            for constructed in (False, True):
                name = "compose + keyed_groups" if constructed else "plain"
                config = inventory_config(work, lab, f"{'before' if tree else 'now'}-{name.split()[0]}", constructed)
                cases[f"ansible-inventory --list, {name}{label}"] = inventory(config, tree)
        cases = {name: case for name, case in cases.items() if re.search(args.cases, name)}
        rows = summarise(measure_rounds(cases, args.rounds))
        group = f"{tags} tags, one repository, {IMAGES} images"
        # A partial run (--cases) keeps the full results of the last whole run.
        write_results("report_scale" + ("-partial" if args.cases else ""), "Tag report and inventory plugin at scale", {group: rows},
                      {group: [next(iter(cases))] if args.cases == "" else []},
                      ["Whole runs (ansible-playbook, ansible-inventory --list) with their peak RSS; the first row is "
                       "the facts alone, which every other row includes.",
                       "The inventory reads the same facts as the report, then makes one host per tag."],
                      rounds=args.rounds, tags=tags)
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
