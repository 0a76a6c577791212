"""Benchmark: plan and apply a prune, at two sizes: 1,000 tags (20 repositories x 50 tags, as seed_prune shapes them)
and the demo's shape (one repository of CI builds, 12 tags, with its policy and a report).

Each round seeds a fresh throwaway registry on 127.0.0.1 (pruning is destructive), then measures regops.registry's
own work in-process (facts, plan, deletes, as the role's module calls do them) or the whole ansible-playbook run of
the prune role (bench/prune.yml), next to Ansible's no-op run of the same play (bench/promote_noop.yml). The role's
rows say how many tasks it ran and how much longer than the no-op run it took. Not a test: it prints medians and
writes them to .tmp/bench/prune.json.

    make bench            (or: .venv/bin/python bench/prune.py --rounds 3)
    .venv/bin/python bench/prune.py --rounds 1 --shapes demo     (quick: the role's own cost)
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
import os
import sys
import tempfile
import time
from pathlib import Path

from common import playbook, role_columns, summarise, write_results

from tests.integration.runner import ensure_collection_link
from tests.lab import seed
from tests.lab.registry import start_registry

MANY = {"keep_latest": 10, "keep_tags": [r"^v\d+\.\d+\.\d+$", "^latest$"]}
DEMO = {"keep_latest": 3, "group_by": r"^(.+)-\d+$", "keep_tags": [r"^v\d+\.\d+\.\d+$"]}
WORK = "regops module work: plan + apply"
ROLE = "regops prune role, whole ansible-playbook run"
ROLE_BARE = "regops prune role, no report"
NOOP = "ansible-playbook alone (no-op play)"


def seed_many(lab, repositories: int) -> list[str]:
    return list(seed.seed_prune(seed.LabSession(lab), repositories=repositories, prefix="bench"))


def seed_demo(lab, _repositories: int) -> list[str]:
    seed.push_ci_builds(seed.LabSession(lab), "demo/ci")
    return ["demo/ci"]


def main() -> int:  # noqa: C901 - one benchmark, start to end
    parser = argparse.ArgumentParser()
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", default=["many", "demo"], choices=["many", "demo"])
    args = parser.parse_args()
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from ansible_collections.regops.registry.plugins.module_utils.deletion import apply_delete, plan_delete
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
    from ansible_collections.regops.registry.plugins.module_utils.retention import make_policy, plan_retention

    def module_work(lab, repos, policy_terms: dict, _tmp: Path) -> dict:
        """What the role's two module calls do, in-process: two repositories at a time, 8 requests each."""
        client = build_client(lab.conn().get)
        warnings = []
        client._warn = warnings.append
        policy = make_policy(**policy_terms)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            plans = list(pool.map(lambda repo: plan_retention(
                FactsGatherer(client, 8).tag_details(repo, client.list_tags(repo)), policy, repository=repo), repos))
            planned = time.perf_counter()
            deletes = [plan_delete(client, p["repository"], tags=p["delete_tags"], digests=p["delete_digests"],
                                   protect=p["keep_tags"]) for p in plans]
            list(pool.map(lambda item: apply_delete(client, item[0]["repository"], item[1]), zip(plans, deletes)))
        client.close()
        assert not warnings, warnings
        return {"plan": planned - start, "apply": time.perf_counter() - planned,
                "deleted": sum(p["summary"]["deleted"] for p in plans), "tags": sum(p["summary"]["tags"] for p in plans)}

    def role_run(lab, repos, policy_terms: dict, tmp: Path, report: bool = True) -> dict:
        variables = {"prune_registry": lab.url, "prune_repositories": repos, "prune_max_deletions": 100000,
                     "prune_report_path": str(tmp / "report") if report else None,
                     **{f"prune_{k}": v for k, v in policy_terms.items()}}
        seconds, _rss, tasks = playbook("prune.yml", variables, tmp)
        if report:
            assert json.loads((tmp / "report.json").read_text())["summary"]["deleted"] > 0
        return {"total": seconds, "tasks": len(tasks), "task_times": tasks}

    def noop(_lab, _repos, _policy_terms: dict, tmp: Path) -> dict:
        return {"total": playbook("promote_noop.yml", {}, tmp)[0]}

    shapes = {"many": (seed_many, MANY), "demo": (seed_demo, DEMO)}
    cases = {WORK: module_work, ROLE: role_run, ROLE_BARE: lambda *a: role_run(*a, report=False), NOOP: noop}
    groups, peers, goals, notes = {}, {}, [], []
    for shape in args.shapes:
        seeder, policy_terms = shapes[shape]
        results: dict[str, list[dict]] = {name: [] for name in cases}
        for _round in range(args.rounds):
            for name, func in cases.items():
                lab = start_registry("plain")
                try:
                    with tempfile.TemporaryDirectory(prefix="regops-prune-") as tmp:
                        repos = seeder(lab, args.repositories) if name != NOOP else []
                        outcome = func(lab, repos, policy_terms, Path(tmp))
                    if repos:  # independently of the client: exactly the tags the module work kept remain
                        expected = results[WORK][-1] if name != WORK else outcome
                        remaining = sum(len(seed.list_tags(seed.LabSession(lab), repo)) for repo in repos)
                        assert remaining == expected["tags"] - expected["deleted"], (name, remaining, expected)
                    results[name].append(outcome)
                finally:
                    lab.close()
        module, role = results[WORK], results[ROLE]
        samples = {"regops module work: plan (facts + planner)": [o["plan"] for o in module],
                   "regops module work: apply (deletes)": [o["apply"] for o in module],
                   WORK: [o["plan"] + o["apply"] for o in module],
                   ROLE: [o["total"] for o in role], ROLE_BARE: [o["total"] for o in results[ROLE_BARE]],
                   NOOP: [o["total"] for o in results[NOOP]]}
        where = "the demo's shape, one repository" if shape == "demo" else f"{args.repositories} repositories"
        group = f"{module[0]['tags']} tags in {where}, {module[0]['deleted']} deleted"
        groups[group] = summarise({n: {"times": t, "rss": []} for n, t in samples.items()})
        role_columns(groups[group], {ROLE: role[0]["tasks"], ROLE_BARE: results[ROLE_BARE][0]["tasks"]}, NOOP)
        peers[group] = []
        rows = groups[group]
        for name in (ROLE, ROLE_BARE):
            over = rows[name]["over_noop"] - rows[WORK]["median"]
            goals.append(f"{group}, {name.replace('regops prune role, ', '')}: {rows[name]['median']:.2f} s = no-op "
                         f"{rows[NOOP]['median']:.2f} s + module work {rows[WORK]['median']:.2f} s + {over:.2f} s "
                         f"({rows[name]['tasks']} tasks; goal for the demo's shape: + 2 s at most, "
                         f"{'met' if over <= 2 else 'missed'})")
        notes.append(f"{group}, the role's tasks in the last round: " + ", ".join(
            f"{name.replace('regops.registry.prune : ', '')} {seconds:.2f} s" for name, seconds in role[-1]["task_times"]) + ".")
    write_results("prune", "Prune plan and apply", groups, peers,
                  ["Policies: 1,000 tags, keep the 10 newest images and every release (v1.2.3) and latest; the demo's "
                   "shape, keep the 3 newest builds of each branch and every release. Every measurement on a freshly "
                   "seeded registry; the tags left are counted independently.",
                   "The role writes its report (JSON and Markdown) in every run; its rows give its tasks (argument "
                   "validation and skipped tasks included) and its whole run less Ansible's no-op run.",
                   f"Load average when the run ended: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
                   f"({os.cpu_count()} cores, shared).", *notes],
                  rounds=args.rounds, goals=goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
