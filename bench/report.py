"""Turn the results of the benchmarks (.tmp/bench/*.json, from `make bench`) into docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from common import OUT, ROOT

ORDER = ("facts", "listing", "promote", "upload", "prune", "scale")


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: dict, peers: list[str]) -> list[str]:
    lines = ["| case | median | min | max | peak RSS |" + "".join(f" vs {cell(p)} |" for p in peers),
             "|---|---:|---:|---:|---:|" + "---:|" * len(peers)]
    for name, row in rows.items():
        rss = f"{row['peak_rss_mib']:.1f} MiB" if "peak_rss_mib" in row else ""
        ratios = "".join(f" {row['median'] / rows[p]['median']:.2f}x |" for p in peers)
        lines.append(f"| {cell(name)} | {row['median']:.3f} s | {row['min']:.3f} s | {row['max']:.3f} s | {rss} |{ratios}")
    return lines


def main() -> int:
    results = {path.stem: json.loads(path.read_text()) for path in sorted(OUT.glob("*.json"))}
    known = [results[name] for name in ORDER if name in results and "groups" in results[name]]
    if not known:
        print("no benchmark results in .tmp/bench: run make bench", file=sys.stderr)
        return 1
    machine = known[0]["machine"]
    lines = ["# Benchmarks", "",
             "Written by `make bench` (bench/report.py) from the run below: regops.registry side by side with the",
             "tools users would otherwise pick, in the same run, on throwaway registries on 127.0.0.1, each case run",
             "several times with the tools alternating. Ratios are median / median of the peer (below 1: faster).",
             "\"Module work\" is the client called in-process as the module calls it; \"ansible-playbook run\" is the",
             "whole run, Ansible's start included.", "",
             f"Run on {datetime.now(timezone.utc):%Y-%m-%d}: {machine['cpu'] or 'unknown CPU'}, {machine['cores']} cores, "
             f"{machine['memory_mib']} MiB, {machine['platform']}, Python {machine['python']}.", "",
             "Tools: " + ", ".join(f"{k} ({v})" for k, v in sorted(machine.get("tools", {}).items())) + ".", ""]
    for result in known:
        lines += [f"## {result['title']}", ""]
        for group, rows in result["groups"].items():
            lines += [f"### {group}", ""] + table(rows, result["peers"].get(group, [])) + [""]
        lines += [f"- {note}" for note in result.get("notes", [])] + [""]
    target = ROOT / "docs" / "benchmarks.md"
    target.write_text("\n".join(lines))
    print(f"written {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
