"""Benchmark: facts (digest, created, size, platforms, labels) for 1,000 tags.

regops.registry in one call (the module's own work in-process, and a whole ansible-playbook run) against a loop of
`skopeo inspect` over the same tags, in the same run, on the same throwaway registry on 127.0.0.1. Not a test:
it prints medians and writes them to .tmp/bench/facts.json.

    make bench            (or: .venv/bin/python bench/facts.py --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".tmp" / "collections")]

from tests.integration.runner import ensure_collection_link, run_playbook  # noqa: E402
from tests.lab import seed  # noqa: E402
from tests.lab.registry import start_registry  # noqa: E402


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_collection_link()
    from ansible_collections.regops.registry.plugins.module_utils.common import build_client
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer

    lab = start_registry("plain")
    try:
        session = seed.LabSession(lab)
        expected = seed.seed_scale(session, repositories=1, tags_per_repository=args.tags, images_per_repository=50,
                                   prefix="bench")
        repo, tags = next(iter(expected.items()))
        tag_list = sorted(tags)
        print(f"seeded {len(tag_list)} tags in {repo} on {lab.url}")

        def module_work():
            client = build_client(lab.conn().get)
            images = FactsGatherer(client, 16).tag_details(repo, client.list_tags(repo))
            assert len(images) == len(tag_list)
            client.close()

        def playbook_run():
            run = run_playbook("scale.yml", {"conn": lab.conn(), "repositories": [repo]})
            assert run.ok, run.output[-2000:]

        def skopeo_loop():
            for tag in tag_list:
                subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--no-tags", f"docker://{lab.host}/{repo}:{tag}"],
                               capture_output=True, check=True)

        cases = {"regops module work (in-process, 1 call)": module_work,
                 "regops ansible-playbook run (1 task)": playbook_run,
                 "skopeo inspect loop": skopeo_loop}
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _round in range(args.rounds):
            for name, func in cases.items():  # alternate the tools within each round
                results[name].append(timed(func))
        floor = statistics.median(results["skopeo inspect loop"])
        print(f"\n{'case':<44} {'median s':>9} {'min':>7} {'max':>7} {'vs skopeo':>10}")
        summary = {}
        for name, times in results.items():
            median = statistics.median(times)
            summary[name] = {"median": median, "min": min(times), "max": max(times), "speedup_vs_skopeo": floor / median}
            print(f"{name:<44} {median:>9.2f} {min(times):>7.2f} {max(times):>7.2f} {floor / median:>9.1f}x")
        out = ROOT / ".tmp" / "bench" / "facts.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"tags": len(tag_list), "rounds": args.rounds, "machine": platform.platform(),
                                   "cpus": __import__("os").cpu_count(), "results": summary}, indent=2))
        print(f"\nwritten to {out}")
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
