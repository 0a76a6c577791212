"""Profile: where the roles' module tasks spend their time, for the goals the promote and prune roles measure
against Ansible's no-op run (bench/promote.py, bench/prune.py).

The promote role (one registry_manifest call, same registry) and the prune role in check mode (registry_tags, then
registry_delete: nothing is deleted, so every round sees the same registry) run in ansible-playbook with the
modules' payloads kept (ANSIBLE_KEEP_REMOTE_FILES). Each module task is then taken apart:

* the task as the playbook ran it (bench/callback's task times);
* the payload Ansible builds on the controller, once per run and module (module_common.modify_module in a fresh
  process, as a run's first task of a module builds it), and how much of that is parsing regops.registry's
  module_utils and how much Ansible's own;
* the module process: the very payload Ansible ran (its arguments inside) run again as Ansible runs it, next to
  Python's bare start; its imports by package (``python -X importtime``, the time each module's own import took).

Not a test: it prints medians and writes .tmp/bench/task_profile.json.

    .venv/bin/python bench/task_profile.py --rounds 5
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import bench_arguments, playbook, summarise, write_results

from tests.integration.runner import ansible_env, ensure_collection_link
from tests.lab import seed
from tests.lab.registry import start_registry

NOOP = "ansible-playbook alone (no-op play)"
TASK = "the task in the whole ansible-playbook run"
BUILD = "payload build on the controller (once per run and module)"
BUILD_OURS = "  of it, parsing regops.registry's module_utils"
BUILD_ANSIBLE = "  of it, parsing Ansible's module_utils"
PROCESS = "module process (the payload Ansible ran, run again)"
START = "  of it, Python's bare start (python -c pass)"
IMPORT_ANSIBLE = "  of it, imports: Ansible's module_utils (AnsibleModule)"
IMPORT_OURS = "  of it, imports: regops.registry's module_utils"
IMPORT_OTHER = "  of it, imports: requests, urllib3 and the standard library"
WORK = "  of it, the rest: arguments, requests, result"
# The roles' module tasks, by the name of the task that runs them.
TASKS = {"registry_manifest": "Promote the source to every target",
         "registry_tags": "Gather the facts of every tag and plan, one concurrent call for all the repositories",
         "registry_delete": "Delete, one concurrent call for all the repositories"}

# modify_module as a run's first task of a module calls it, in a fresh process, with the parsing timed by origin.
BUILD_SCRIPT = r"""
import json, sys, time
from ansible.plugins.loader import init_plugin_loader, module_loader
init_plugin_loader()
from ansible.executor import module_common
from ansible.template import Templar
name = sys.argv[1]
path = module_loader.find_plugin_with_context(name).plugin_resolved_path
parse = module_common._compile_module_ast
spent = {"ours": 0.0, "ansible": 0.0}
def timed(module, source):
    start = time.perf_counter()
    try:
        return parse(module, source)
    finally:
        spent["ours" if "regops" in str(module) else "ansible"] += time.perf_counter() - start
module_common._compile_module_ast = timed
start = time.perf_counter()
module_common.modify_module(module_name=name, module_path=path, module_args={}, templar=Templar(loader=None),
                            task_vars={"ansible_python_interpreter": sys.executable},
                            module_compression="ZIP_DEFLATED")
print(json.dumps({"build": time.perf_counter() - start, **spent}))
"""


def build_times(module: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", BUILD_SCRIPT, f"regops.registry.{module}"], capture_output=True,
                          text=True, env=ansible_env(), check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def import_split(payload: Path) -> dict[str, float]:
    """Seconds of the payload's imports by origin: each module's own import time (-X importtime's self column)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(payload)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    split = {"ansible": 0.0, "ours": 0.0, "other": 0.0}
    for line in proc.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if found:
            name = found.group(2)
            origin = "ours" if name.startswith("ansible_collections.regops") else (
                "ansible" if name.startswith("ansible.") else "other")
            split[origin] += int(found.group(1)) / 1e6
    return split


def main() -> int:  # noqa: C901 - one profile, start to end
    args = bench_arguments(rounds=5)
    if args is None:
        return 1
    ensure_collection_link()
    lab = start_registry("plain")
    session = seed.LabSession(lab)
    seed.push_ci_builds(session, "demo/ci")
    runs = {
        "promote": ("promote.yml", False, {
            "promote_source": f"{lab.host}/demo/ci:v1.0.0", "promote_targets": [f"{lab.host}/demo/prod:v1.0.0"],
            "promote_registries": {lab.host: {"registry": lab.url}}}),
        "prune": ("prune.yml", True, {
            "prune_registry": lab.url, "prune_repositories": ["demo/ci"], "prune_keep_latest": 3,
            "prune_group_by": r"^(.+)-\d+$", "prune_keep_tags": [r"^v\d+\.\d+\.\d+$"], "prune_max_deletions": 100}),
    }
    samples: dict[str, dict[str, list[float]]] = {}
    payloads: dict[str, Path] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="regops-task-profile-") as tmp_name:
            tmp = Path(tmp_name)
            noop = []
            for round_index in range(args.rounds + 1):
                for run, (book, check, variables) in runs.items():
                    # The first round keeps the payloads; the others are timed as users run them.
                    remote = tmp / f"{run}-payloads"
                    keep = {"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote)}
                    _seconds, _rss, tasks = playbook(book, variables, tmp, check=check,
                                                     env=keep if round_index == 0 else None)
                    if round_index == 0:
                        payloads.update({path.stem.removeprefix("AnsiballZ_"): path
                                         for path in remote.glob("*/AnsiballZ_*.py")})
                        continue
                    times = {name.split(" : ", 1)[-1]: seconds for name, seconds in tasks}
                    for module, task in TASKS.items():
                        if task in times:
                            samples.setdefault(f"{module} ({run} role)", {}).setdefault(TASK, []).append(times[task])
                if round_index:
                    noop.append(playbook("promote_noop.yml", {}, tmp)[0])
            for group, rows in samples.items():
                module = group.split(" ")[0]
                payload = payloads[module]
                for _round in range(args.rounds):
                    built = build_times(module)
                    rows.setdefault(BUILD, []).append(built["build"])
                    rows.setdefault(BUILD_OURS, []).append(built["ours"])
                    rows.setdefault(BUILD_ANSIBLE, []).append(built["ansible"])
                    rows.setdefault(PROCESS, []).append(timed_run([sys.executable, str(payload)]))
                    rows.setdefault(START, []).append(timed_run([sys.executable, "-c", "pass"]))
                    split = import_split(payload)
                    rows.setdefault(IMPORT_ANSIBLE, []).append(split["ansible"])
                    rows.setdefault(IMPORT_OURS, []).append(split["ours"])
                    rows.setdefault(IMPORT_OTHER, []).append(split["other"])
                    rows.setdefault(WORK, []).append(rows[PROCESS][-1] - rows[START][-1] - sum(split.values()))
                rows[NOOP] = noop
    finally:
        lab.close()
    groups = {group: summarise({name: {"times": times, "rss": []} for name, times in rows.items()})
              for group, rows in samples.items()}
    notes = [
        "Each group is one module task of a role: promote (same registry, the target already written after the "
        "first round) and prune in check mode, on the demo's registry (12 tags).",
        "The task row comes from the whole ansible-playbook runs; the others take that task apart. The payload is "
        "built once per run and module, by the run's first task of that module; the module process is the payload "
        "Ansible ran, arguments inside, run again the same way. Import times are each module's own import "
        "(python -X importtime), by origin; the work is what is left of the process.",
        "What the task costs beyond the payload and the process is Ansible's handling of it: templating the "
        "arguments, the temporary directory on the host, the result.",
    ]
    write_results("task_profile", "Where a role's module task spends its time", groups, {}, notes,
                  rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
