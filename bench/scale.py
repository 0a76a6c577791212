"""Benchmark: facts and prune at 1,000, 20,000 and 100,000 tags (issue 17). Not a test.

Registries come from tests.lab.bulk (distribution's storage written directly, cached under .tmp/bench/storage): 1, 20
and 100 repositories of 1,000 tags (100 images, 10 tags each), and one repository of 20,000 tags (2,000 images). Per
size, in one run: the request floor (curl --parallel 16 knowing every URL: a HEAD per tag, then each distinct
manifest and config), the registry_tags module process (details: true, every repository in one call), the whole
playbook of that one task, Ansible's own no-op run, the prune role in check mode with a report, and a real prune
that deletes 90% (keep the newest tenth of the images) on a copy of the storage. Peak RSS is GNU time's for the
module process alone, and for the whole playbook run (its largest process). The role's tasks are timed by
bench/callback/regops_task_times.py.

    .venv/bin/python bench/scale.py                      (1,000, 20,000 and 20,000 in one repository)
    .venv/bin/python bench/scale.py --sizes 1000 20000 100000 20000x1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OUT, playbook, run_measured, write_results
from facts import cpu_seconds

from tests.integration.runner import ansible_env, ensure_collection_link
from tests.lab import bulk, seed
from tests.lab.registry import start_registry

SHAPES = {"1000": bulk.Shape(1, 100), "20000": bulk.Shape(20, 100), "100000": bulk.Shape(100, 100),
          "20000x1": bulk.Shape(1, 2000, prefix="big")}
# distribution 2.8 reads the link of every tag of the repository on each manifest DELETE (to untag it): at 20,000
# tags in one repository about one DELETE a second on this machine, so 1,800 deletes take half an hour of the
# registry's CPU, whatever the client does. The real prune runs where repositories are of 1,000 tags.
REAL_PRUNE_MAX_TAGS = 5000
FLOOR = "curl --parallel 16 (request floor)"
MODULE = "registry_tags module process (details)"
PLAYBOOK = "registry_tags playbook run (1 task)"
NOOP = "ansible-playbook alone (no-op task)"
CHECK = "prune role, check mode, report"
REAL = "prune role, deleting 90%"


def describe(shape: bulk.Shape) -> str:
    where = "one repository" if shape.repositories == 1 else f"{shape.repositories} repositories"
    return f"{shape.tags:,} tags in {where} ({shape.images * shape.repositories:,} images)"


def curl_floor(lab, shape: bulk.Shape, tmp: Path) -> None:
    """Every URL known in advance: HEAD per tag, then GET of each distinct manifest and config."""
    heads, gets = [], []
    for r, name in enumerate(shape.names()):
        heads += [f"{lab.url}/v2/{name}/manifests/{tag}" for tag in bulk.expected_tags(shape, r)]
        for image in range(shape.images):
            blobs = bulk.image_blobs(r, image)
            gets += [f"{lab.url}/v2/{name}/manifests/{bulk.digest_of(blobs['manifest'])}",
                     f"{lab.url}/v2/{name}/blobs/{bulk.digest_of(blobs['config'])}"]
    for name, urls, extra in (("heads", heads, ["--head"]), ("gets", gets, [])):
        config = tmp / name
        config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
        subprocess.run(["curl", "-sf", *extra, "-H", f"Accept: {seed.ACCEPT}", "--parallel", "--parallel-max", "16",
                        "-K", str(config)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def module_process(lab, shape: bulk.Shape, tmp: Path) -> tuple[float, float]:
    """The module as Ansible runs it (a Python process reading its arguments, printing its result)."""
    args = tmp / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"registry": lab.url, "repositories": shape.names(),
                                                        "details": True, "sort": "none"}}))
    env = ansible_env({"PYTHONPATH": str(ensure_collection_link())})
    return run_measured([sys.executable, "-m", "ansible_collections.regops.registry.plugins.modules.registry_tags",
                         str(args)], env=env)


def prune_variables(lab, shape: bulk.Shape, tmp: Path) -> dict:
    return {"prune_registry": lab.url, "prune_repositories": shape.names(),
            "prune_keep_latest": max(1, shape.images // 10), "prune_max_deletions": shape.tags,
            "prune_report_path": str(tmp / "report"), "summary_path": str(tmp / "summary.json")}


def row(seconds: float, rss: float | None = None) -> dict:
    out = {"median": seconds, "min": seconds, "max": seconds, "runs": 1}
    if rss is not None:
        out["peak_rss_mib"] = rss
    return out


def on_registry(lab, run) -> tuple:
    """``run()``'s outcome, and what the registry spent meanwhile: its CPU seconds and the requests by method."""
    mark, before = lab.mark(), cpu_seconds(lab.pid)
    outcome = run()
    return (*outcome, {"cpu": cpu_seconds(lab.pid) - before, "requests": dict(lab.count_requests(since=mark))})


def measure(shape: bulk.Shape, tmp: Path) -> tuple[dict, dict, dict]:
    """Every case at one size: the rows, the prune role's task times, and the registry's work for the prunes."""
    rows, tasks, registry = {}, {}, {}
    names = shape.names()
    cached = bulk.cached_storage(shape)
    (tmp / "read").mkdir()
    (tmp / "read" / "storage").symlink_to(cached)  # read-only cases serve the cache itself
    with start_registry("plain", tmp / "read") as lab:
        start = time.perf_counter()
        curl_floor(lab, shape, tmp)
        rows[FLOOR] = row(time.perf_counter() - start)
        rows[MODULE] = row(*module_process(lab, shape, tmp))
        seconds, rss, _tasks = playbook("scale_facts.yml", {"registry": lab.url, "repositories": names,
                                                            "expected": shape.tags}, tmp)
        rows[PLAYBOOK] = row(seconds, rss)
        seconds, rss, _tasks = playbook("scale_noop.yml", {}, tmp)
        rows[NOOP] = row(seconds, rss)
        seconds, rss, tasks[CHECK], registry[CHECK] = on_registry(
            lab, lambda: playbook("scale_prune.yml", prune_variables(lab, shape, tmp), tmp, check=True))
        rows[CHECK] = row(seconds, rss)

        summary = json.loads((tmp / "summary.json").read_text())
        assert summary["tags"] == shape.tags and summary["deleted"] == shape.tags * 9 // 10, summary
    if shape.images * shape.tags_per_image > REAL_PRUNE_MAX_TAGS:
        return rows, tasks, registry
    bulk.registry_workdir(shape, tmp / "write")
    with start_registry("plain", tmp / "write") as lab:
        seconds, rss, tasks[REAL], registry[REAL] = on_registry(
            lab, lambda: playbook("scale_prune.yml", prune_variables(lab, shape, tmp), tmp))
        rows[REAL] = row(seconds, rss)
        left = sum(len(seed.list_tags(seed.LabSession(lab), name)) for name in names)
        assert left == shape.tags // 10, left  # counted independently of the collection
    shutil.rmtree(tmp / "write", ignore_errors=True)
    return rows, tasks, registry


def registry_work(registry: dict) -> str:
    """The registry's share of the prunes: what the real one's DELETEs cost it beyond the check-mode run."""
    said = [f"{case}: registry CPU {work['cpu']:.0f} s, requests "
            + ", ".join(f"{n:,} {method}" for method, n in sorted(work["requests"].items()))
            for case, work in registry.items()]
    deletes = registry.get(REAL, {}).get("requests", {}).get("DELETE", 0)
    if deletes and CHECK in registry:
        extra = registry[REAL]["cpu"] - registry[CHECK]["cpu"]
        said.append(f"the real prune's registry CPU beyond the check-mode run's, {extra:.0f} s, over its {deletes:,} "
                    f"DELETEs: {extra * 1000 / deletes:.0f} ms per DELETE")
    return "; ".join(said)


def goals(rows: dict, tasks: dict, tags: int) -> list[str]:
    """The issue's ratios, as sentences."""
    facts_task = next(t for name, t in tasks[CHECK] if name.startswith("regops.registry.prune : Gather"))
    rest = sum(t for name, t in tasks[CHECK] if name.startswith("regops.registry.prune : ")
               and not name.startswith("regops.registry.prune : Gather") and "catalog" not in name)
    return [f"module / floor {rows[MODULE]['median'] / rows[FLOOR]['median']:.2f}x (goal 1.3x)",
            f"playbook / (module + no-op) {rows[PLAYBOOK]['median'] / (rows[MODULE]['median'] + rows[NOOP]['median']):.2f}x"
            " (goal 1.3x)",
            f"check-mode prune / facts playbook {rows[CHECK]['median'] / rows[PLAYBOOK]['median']:.2f}x (goal 1.5x)",
            (f"real prune / facts playbook {rows[REAL]['median'] / rows[PLAYBOOK]['median']:.2f}x (goal 1.5x)"
             if REAL in rows else "no real prune (distribution 2.8 scans every tag of the repository per DELETE)"),
            f"role tasks after the facts / the facts task {rest / facts_task:.2f} (goal below 0.5)",
            f"peak RSS {max(r.get('peak_rss_mib', 0) for r in rows.values()):.0f} MiB (goal 1024), "
            f"{rows[CHECK]['peak_rss_mib'] * 2 ** 20 / tags:.0f} bytes per tag (check-mode prune, largest process)"]


def earlier_run(sizes_run: list[str]) -> tuple[dict, dict, list, dict]:
    """The groups of the sizes this run leaves out, from the previous scale.json: one size can be measured again
    alone (100,000 tags take an hour) and the page still shows the growth. Each group's notes say when."""
    path = OUT / "scale.json"
    if not path.exists():
        return {}, {}, [], {}
    earlier = json.loads(path.read_text())
    fresh = {describe(SHAPES[size]) for size in sizes_run}
    kept = [group for group in earlier["groups"] if group not in fresh]
    return ({g: earlier["groups"][g] for g in kept}, {g: earlier["peers"].get(g, []) for g in kept},
            [n for n in earlier["notes"] if any(n.startswith(f"{g}:") or n.startswith(f"{g},") for g in kept)],
            {g: earlier.get("task_times", {}).get(g, {}) for g in kept})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["1000", "20000", "20000x1"], choices=list(SHAPES))
    args = parser.parse_args()
    ensure_collection_link()
    groups, peers, notes, task_times = earlier_run(args.sizes)
    for size in sorted(args.sizes, key=lambda s: SHAPES[s].repositories * SHAPES[s].images):
        shape = SHAPES[size]
        with tempfile.TemporaryDirectory(prefix="regops-scale-") as tmp:
            rows, tasks, registry = measure(shape, Path(tmp))
        group = describe(shape)
        groups[group], peers[group] = rows, [FLOOR, PLAYBOOK]
        task_times[group] = tasks
        notes.append(f"{group}: " + "; ".join(goals(rows, tasks, shape.tags)) + ".")
        notes.append(f"{group}, the registry's work: {registry_work(registry)}.")
        for case, times in tasks.items():
            notes.append(f"{group}, {case}, per task: " + ", ".join(
                f"{name.replace('regops.registry.prune : ', '')} {seconds:.1f} s" for name, seconds in times
                if seconds >= 0.05) + ".")
        notes.append(f"{group}: measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
                     f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end (the machine is shared; "
                     f"{os.cpu_count()} cores).")
    order = [describe(shape) for shape in SHAPES.values()]
    groups = dict(sorted(groups.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))
    notes.append("How to read these rows, and where the time goes: [docs/scaling.md](scaling.md#the-scale-benchmark).")
    write_results("scale", "Scale: facts and prune at many tags", groups, peers, notes, task_times=task_times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
