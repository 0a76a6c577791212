"""Benchmark: plan and apply a prune of 1,000 tags (20 repositories x 50 tags, as seed_prune shapes them).

Each round seeds a fresh throwaway registry on 127.0.0.1 (pruning is destructive), then measures regops.registry's
own work in-process (facts, plan, deletes, as the role's module calls do them) or the whole ansible-playbook run of
the prune role. Not a test: it prints medians and writes them to .tmp/bench/prune.json.

    make bench            (or: .venv/bin/python bench/prune.py --rounds 3)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import sys
import time

from common import summarise, write_results

from tests.integration.runner import ensure_collection_link, run_playbook
from tests.lab import seed
from tests.lab.registry import start_registry

POLICY = {"keep_latest": 10, "keep_tags": [r"^v\d+\.\d+\.\d+$", "^latest$"]}


def main() -> int:  # noqa: C901 - one benchmark, start to end
    parser = argparse.ArgumentParser()
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from ansible_collections.regops.registry.plugins.module_utils.deletion import apply_delete, plan_delete
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
    from ansible_collections.regops.registry.plugins.module_utils.retention import make_policy, plan_retention

    def module_work(lab, repos) -> dict:
        """What the role's two module calls do, in-process: two repositories at a time, 8 requests each."""
        client = build_client(lab.conn().get)
        warnings = []
        client._warn = warnings.append
        policy = make_policy(**POLICY)
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

    def role_run(lab, repos) -> dict:
        start = time.perf_counter()
        run = run_playbook("prune.yml", {"prune_registry": lab.url, "prune_repositories": ["^bench/"],
                                         "prune_keep_latest": POLICY["keep_latest"], "prune_keep_tags": POLICY["keep_tags"],
                                         "prune_max_deletions": 100000})
        assert run.ok, run.output[-3000:]
        return {"total": time.perf_counter() - start, "deleted": run.results["summary"]["deleted"],
                "tags": run.results["summary"]["tags"]}

    cases = {"regops module work (in-process)": module_work, "regops prune role, whole ansible-playbook run": role_run}
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for _round in range(args.rounds):
        for name, func in cases.items():
            lab = start_registry("plain")
            try:
                repos = list(seed.seed_prune(seed.LabSession(lab), repositories=args.repositories, prefix="bench"))
                outcome = func(lab, repos)
                # Independently of the client: exactly the kept tags remain.
                remaining = sum(len(seed.list_tags(seed.LabSession(lab), repo)) for repo in repos)
                assert remaining == outcome["tags"] - outcome["deleted"], (remaining, outcome)
                results[name].append(outcome)
            finally:
                lab.close()
    tags = results[next(iter(cases))][0]["tags"]
    module, role = results["regops module work (in-process)"], results["regops prune role, whole ansible-playbook run"]
    samples = {"regops module work: plan (facts + planner)": [o["plan"] for o in module],
               "regops module work: apply (deletes)": [o["apply"] for o in module],
               "regops module work: plan + apply": [o["plan"] + o["apply"] for o in module],
               "regops prune role, whole ansible-playbook run": [o["total"] for o in role]}
    group = f"{tags} tags in {args.repositories} repositories, {module[0]['deleted']} deleted"
    write_results("prune", "Prune plan and apply", {group: summarise({n: {"times": t, "rss": []} for n, t in samples.items()})},
                  {group: []}, ["Policy: keep the 10 newest images and every release (v1.2.3) and latest; every "
                                "measurement on a freshly seeded registry; the tags left are counted independently."],
                  rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
