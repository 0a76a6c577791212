"""Turn the results of the benchmarks (.tmp/bench/*.json, from `make bench`) into docs/benchmarks.md.

A benchmark whose results are not in .tmp/bench this time (one bench run alone) keeps its section of the existing
docs/benchmarks.md as it is, in its place, and the header says which sections come from an earlier run.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone

from common import OUT, ROOT

ORDER = ("facts", "listing", "promote", "upload", "prune", "task_profile", "mirror", "scale", "report_scale", "shards",
         "usage")
TARGET = ROOT / "docs" / "benchmarks.md"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: dict, peers: list[str]) -> list[str]:
    """One row per case; where a role ran (bench/common.py role_columns), its task count and its whole run's
    overhead over Ansible's no-op run of the same play."""
    roles = any("tasks" in row for row in rows.values())
    extra = " role tasks | over the no-op run |" if roles else ""
    lines = ["| case | median | min | max | peak RSS |" + extra + "".join(f" vs {cell(p)} |" for p in peers),
             "|---|---:|---:|---:|---:|" + "---:|" * (len(peers) + 2 * roles)]
    for name, row in rows.items():
        rss = f"{row['peak_rss_mib']:.1f} MiB" if "peak_rss_mib" in row else ""
        role = (f" {row['tasks']} | +{row['over_noop']:.2f} s |" if "tasks" in row else " | |") if roles else ""
        ratios = "".join(f" {row['median'] / rows[p]['median']:.2f}x |" for p in peers)
        lines.append(f"| {cell(name)} | {row['median']:.3f} s | {row['min']:.3f} s | {row['max']:.3f} s | {rss} |"
                     f"{role}{ratios}")
    return lines


def request_table(by_tool: dict) -> list[str]:
    """tool -> {"source": {"HEAD manifest": n, ...}, "destination": {...}}: what each tool sent to each registry."""
    def counted(counts: dict) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"

    lines = ["| requests of | to the source | to the destination |", "|---|---|---|"]
    lines += [f"| {cell(tool)} | {counted(sent['source'])} | {counted(sent['destination'])} |"
              for tool, sent in by_tool.items()]
    return lines


def section(result: dict) -> list[str]:
    lines = [f"## {result['title']}", ""]
    for group, rows in result["groups"].items():
        lines += [f"### {group}", ""] + table(rows, result["peers"].get(group, [])) + [""]
        if group in result.get("requests", {}):
            lines += request_table(result["requests"][group]) + [""]
    if result.get("goals"):
        lines += ["Goals:", ""] + [f"- {goal}" for goal in result["goals"]] + [""]
    return lines + [f"- {note}" for note in result.get("notes", [])] + [""]


def existing_sections() -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """The existing file's sections in order, (title, lines), and for each the run it came from (machine, tools)."""
    if not TARGET.exists():
        return {}, []
    text = TARGET.read_text()
    run = re.search(r"^Run on (.*)\.$", text, re.MULTILINE)
    tools = re.search(r"^Tools: (.*)\.$", text, re.MULTILINE)
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        if sections:
            sections[-1][1].append(line)
    that_run = f"{run.group(1) if run else 'an earlier day'}; tools: {tools.group(1) if tools else 'not recorded'}"
    runs = {title: that_run for title, _lines in sections}
    for earlier, titles in re.findall(r"^Kept from the run on (.*?), results not in \.tmp/bench this time: (.*)\.$",
                                      text, re.MULTILINE):
        runs.update({title: earlier for title in titles.split("; ")})
    return runs, sections


def merged(generated: dict[str, list[str]], kept: list[tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
    """Sections in the existing order, each regenerated where its results are here; new ones after.
    Returns the lines and the titles kept from the earlier run."""
    lines, old_titles = [], []
    for title, old in kept:
        if title in generated:
            lines += generated.pop(title)
        else:
            lines += old
            old_titles.append(title)
    for new in generated.values():
        lines += new
    return lines, old_titles


def main() -> int:
    paths = {path.stem: path for path in sorted(OUT.glob("*.json"))}
    results = {name: json.loads(paths[name].read_text()) for name in ORDER if name in paths}
    known = [result for result in results.values() if "groups" in result]
    if not known:
        print("no benchmark results in .tmp/bench: run make bench", file=sys.stderr)
        return 1
    machine = known[0]["machine"]
    newest = max(paths[name].stat().st_mtime for name, result in results.items() if "groups" in result)
    runs, kept = existing_sections()
    body, old_titles = merged({r["title"]: section(r) for r in known}, kept)
    lines = ["# Benchmarks", "",
             "Written by `make bench` (bench/report.py) from the run below: regops.registry side by side with the",
             "tools users would otherwise pick, in the same run, on throwaway registries on 127.0.0.1, each case run",
             "several times with the tools alternating. Ratios are median / median of the peer (below 1: faster).",
             "\"Module work\" is the client called in-process as the module calls it; \"ansible-playbook run\" is the",
             "whole run, Ansible's start included.", "",
             f"Run on {datetime.fromtimestamp(newest, timezone.utc):%Y-%m-%d}: {machine['cpu'] or 'unknown CPU'}, "
             f"{machine['cores']} cores, {machine['memory_mib']} MiB, {machine['platform']}, "
             f"Python {machine['python']}.",
             "", "Tools: " + ", ".join(f"{k} ({v})" for k, v in sorted(machine.get("tools", {}).items())) + ".", ""]
    for run in dict.fromkeys(runs[title] for title in old_titles):
        lines += [f"Kept from the run on {run}, results not in .tmp/bench this time: "
                  + "; ".join(t for t in old_titles if runs[t] == run) + ".", ""]
    TARGET.write_text("\n".join(lines + body).rstrip("\n") + "\n")
    print(f"written {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
