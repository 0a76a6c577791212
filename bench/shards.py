"""Benchmark: the sharded prune of docs/scaling.md with 1, 2 and 4 shards, and what the registry spends per request.

The guide's playbook, as tests/integration/test_scaling.py runs it, in check mode (the registry is kept between
runs: bench/scale_lab.py), with as many forks as shards, over 20 repositories of 1,000 tags (100 images each). For
every run: the wall time, the registry process's CPU time (utime + stime from /proc/<pid>/stat, before and after)
and the requests it logged. Then the registry's CPU cost of one HEAD by tag, one manifest GET and one config GET,
each sent 2,000 times from 8 threads. Not a test.

    .venv/bin/python bench/shards.py [--shards 1 2 4] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import summarise, write_results
from facts import cpu_seconds
from scale_lab import seeded_lab

from tests.integration.runner import ensure_collection_link, run_ansible
from tests.integration.test_scaling import documented_playbook
from tests.lab import seed

REPOSITORIES, IMAGES, TAGS_PER_IMAGE = 20, 100, 10
SAMPLES = 2000


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sharded_run(lab, playbook: Path, shards: int, reports: Path) -> dict:
    mark, cpu, start = lab.mark(), cpu_seconds(lab.pid), time.perf_counter()
    extra = {"shard_count": shards, "shard_filter": "^shard/", "shard_report_dir": str(reports),
             "prune_max_deletions": 100_000}  # the plan deletes 90 %: past the guide's cap
    proc = run_ansible("ansible-playbook", ["--forks", str(shards), str(playbook), "-e", json.dumps(extra)], check=True)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:]
    merged = json.loads((reports / "prune.json").read_text())
    requests = lab.count_requests(since=mark)
    return {"seconds": elapsed, "registry_cpu": cpu_seconds(lab.pid) - cpu, "requests": dict(requests),
            "tags": merged["summary"]["tags"], "load": load()}


def per_request_cost(lab, repo: str, tags: dict[str, str]) -> dict[str, float]:
    """Registry CPU milliseconds per request, for the three requests facts are made of."""
    session = seed.LabSession(lab)
    digest = next(iter(tags.values()))
    raw, _media_type, _digest = seed.get_manifest(session, repo, digest)
    config = json.loads(raw)["config"]["digest"]
    names = list(tags)[:SAMPLES]
    kinds = {"HEAD manifest by tag": lambda i: session.head(f"/v2/{repo}/manifests/{names[i % len(names)]}",
                                                            headers={"Accept": seed.ACCEPT}),
             "GET manifest by digest": lambda i: session.get(f"/v2/{repo}/manifests/{digest}",
                                                             headers={"Accept": seed.ACCEPT}),
             "GET config blob": lambda i: session.get(f"/v2/{repo}/blobs/{config}")}
    cost = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for name, send in kinds.items():
            before = cpu_seconds(lab.pid)
            assert all(answer.status_code == 200 for answer in pool.map(send, range(SAMPLES)))
            cost[name] = (cpu_seconds(lab.pid) - before) * 1000 / SAMPLES
    return cost


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    ensure_collection_link()
    lab = seeded_lab("shards-20x1000", {f"shard/r{r:02d}": (IMAGES, TAGS_PER_IMAGE) for r in range(REPOSITORIES)})
    work = Path(tempfile.mkdtemp(prefix="regops-shards-"))
    try:
        playbook = documented_playbook(work, lab.url)
        runs: dict[int, list[dict]] = {n: [] for n in args.shards}
        for _round in range(args.rounds):
            for shards in args.shards:
                runs[shards].append(sharded_run(lab, playbook, shards, work / f"reports-{shards}"))
                print(f"{shards} shard(s): {runs[shards][-1]}", flush=True)
        repo, tags = next(iter(sorted(lab.seeded.items())))
        cost = per_request_cost(lab, repo, tags)
    finally:
        lab.close()
    total = runs[args.shards[0]][0]["tags"]
    group = f"prune in check mode, {total} tags in {REPOSITORIES} repositories"
    rows = summarise({f"{n} shard(s), --forks {n}": {"times": [r["seconds"] for r in rs], "rss": []}
                      for n, rs in runs.items()})
    for n, rs in runs.items():
        row = rows[f"{n} shard(s), --forks {n}"]
        row["registry_cpu_s"] = max(r["registry_cpu"] for r in rs)
        row["requests"] = rs[0]["requests"]
        row["load"] = [r["load"] for r in rs]
    costs = {name: {"median": ms / 1000, "min": ms / 1000, "max": ms / 1000, "runs": SAMPLES}
             for name, ms in cost.items()}
    write_results("shards", "Sharded prune (docs/scaling.md)",
                  {group: rows, "registry CPU time per request (s)": costs}, {group: [next(iter(rows))]},
                  ["The playbook of docs/scaling.md in check mode against one distribution 2.8 registry on 127.0.0.1, "
                   "on the same 2 cores as Ansible; registry_cpu_s is the registry process's CPU time during the run.",
                   f"Per-request cost: {SAMPLES} requests of each kind from 8 threads, registry CPU time / {SAMPLES}."],
                  rounds=args.rounds, per_request_ms=cost, cores=os.cpu_count())
    return 0


if __name__ == "__main__":
    sys.exit(main())
