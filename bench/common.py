"""What every benchmark shares: alternating rounds, peak RSS of child processes, the summary table, the JSON file.

Results go to .tmp/bench/<name>.json in one shape that bench/report.py turns into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".tmp" / "collections")]
# Whole runs are timed as users run them: without the -vvvv the test suite uses for its secret scan
# (tests.integration.runner reads this when imported, after this module).
os.environ.setdefault("REGOPS_TEST_VERBOSITY", "0")
OUT = ROOT / ".tmp" / "bench"


def bench_arguments(*tools: str, rounds: int = 3) -> argparse.Namespace | None:
    """``--rounds``; None (after saying so) when a tool the benchmark compares with is not installed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args()
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(f"{', '.join(missing)} needed", file=sys.stderr)
        return None
    return args


def run_measured(cmd: list[str], **kwargs) -> tuple[float, float]:
    """Run a command; its wall time and its own peak RSS in MiB.

    GNU time starts it from a small process: a child forked straight from this (large) Python process would report
    this process's RSS as its peak, since Linux keeps the high-water mark across fork and exec.
    """
    from tests.integration.runner import TIME, peak_rss_kib

    with tempfile.TemporaryDirectory(prefix="regops-rss-") as tmp:
        rss_path = Path(tmp) / "rss"
        start = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", str(rss_path), *cmd], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False, **kwargs)
        elapsed = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode()[-1500:]}")
        return elapsed, peak_rss_kib(rss_path) / 1024


def playbook(name: str, variables: dict, tmp: Path, check: bool = False,
             env: dict | None = None) -> tuple[float, float, list]:
    """A whole ansible-playbook run of bench/<name>, as users run it (no -v): wall time, peak RSS of its largest process
    (MiB), and [task name, seconds] of every task started, skipped ones included (bench/callback/regops_task_times.py).
    ``env`` adds environment variables."""
    from tests.integration.runner import TIME, ansible_env, peak_rss_kib

    times_path, vars_path, rss_path = tmp / "task-times.json", tmp / "vars.json", tmp / "rss"
    vars_path.write_text(json.dumps(variables))
    env = ansible_env({"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback"),
                       "ANSIBLE_CALLBACKS_ENABLED": "regops_task_times", "REGOPS_TASK_TIMES": str(times_path),
                       **(env or {})})
    cmd = [TIME, "-f", "%M", "-o", str(rss_path), str(Path(sys.executable).parent / "ansible-playbook"),
           "-i", "localhost,", "-c", "local", str(ROOT / "bench" / name), "-e", f"@{vars_path}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd + (["--check"] if check else []), capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, check=False, timeout=7200)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{name} failed: {(proc.stdout + proc.stderr)[-3000:]}")
    return elapsed, peak_rss_kib(rss_path) / 1024, json.loads(times_path.read_text())


def role_columns(rows: dict, tasks: dict[str, int], noop: str) -> None:
    """Add to each role row how many tasks it ran and its overhead over Ansible's no-op run (report.py's columns)."""
    for name, count in tasks.items():
        rows[name]["tasks"] = count
        rows[name]["over_noop"] = rows[name]["median"] - rows[noop]["median"]


def measure_rounds(cases: dict, rounds: int, prepare=None) -> dict[str, dict]:
    """Run every case once per round, in the given order each round (tools alternate). A case returns None (time
    it here) or ``(seconds or None, rss_mib)`` when it measured itself. ``prepare(name)`` runs untimed before each case."""
    samples: dict[str, dict] = {name: {"times": [], "rss": []} for name in cases}
    for _round in range(rounds):
        for name, func in cases.items():
            if prepare:
                prepare(name)
            start = time.perf_counter()
            outcome = func()
            elapsed = time.perf_counter() - start
            if isinstance(outcome, tuple):  # (seconds or None to keep the time taken here, peak RSS in MiB)
                elapsed = outcome[0] if outcome[0] is not None else elapsed
                samples[name]["rss"].append(outcome[1])
            samples[name]["times"].append(elapsed)
    return samples


def summarise(samples: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for name, sample in samples.items():
        times = sample["times"]
        out[name] = {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": len(times)}
        if sample["rss"]:
            out[name]["peak_rss_mib"] = max(sample["rss"])
    return out


def print_group(title: str, rows: dict[str, dict], peers: list[str]) -> None:
    """Medians, min/max, peak RSS, and the ratio of each row to each peer (x < 1: faster than the peer)."""
    head = f"{'case':<52} {'median s':>9} {'min':>7} {'max':>7} {'RSS MiB':>8}"
    head += "".join(f" {('vs ' + p)[:14]:>14}" for p in peers)
    print(f"\n{title}\n{head}")
    for name, row in rows.items():
        rss = f"{row['peak_rss_mib']:>8.1f}" if "peak_rss_mib" in row else f"{'':>8}"
        ratios = "".join(f" {row['median'] / rows[p]['median']:>13.2f}x" for p in peers)
        print(f"{name:<52} {row['median']:>9.3f} {row['min']:>7.3f} {row['max']:>7.3f} {rss}{ratios}")


def write_results(name: str, title: str, groups: dict[str, dict], peers: dict[str, list[str]], notes: list[str],
                  **extra) -> Path:
    """groups: group -> case -> summary row; peers: group -> the cases every row is compared with."""
    for group, rows in groups.items():
        print_group(f"{title}: {group}", rows, peers.get(group, []))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"name": name, "title": title, "groups": groups, "peers": peers, "notes": notes,
                                "machine": machine(), **extra}, indent=2))
    print(f"\nwritten to {path}")
    return path


def machine() -> dict:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    memory = 0
    try:
        memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal"))) // 1024
    except (OSError, StopIteration, ValueError):
        pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_mib": memory, "tools": tool_versions()}


def tool_versions() -> dict:
    versions = {}
    for tool, args in (("skopeo", ["--version"]), ("curl", ["--version"]), ("docker-registry", ["--version"])):
        if shutil.which(tool):
            text = subprocess.run([tool, *args], capture_output=True, text=True, check=False).stdout
            versions[tool] = " ".join(text.split()[:3]) if text else "?"
    from importlib.metadata import PackageNotFoundError, version

    for package in ("python-dxf", "ansible-core", "requests"):  # python-dxf only where make bench installed it
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions
