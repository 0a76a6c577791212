"""docs/reliability.md from the rows the integration tests wrote (.tmp/reliability/rows.json).

    make reliability      (runs the fault, hostile-input and load tests, then this)
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = ROOT / ".tmp" / "reliability" / "rows.json"
DOC = ROOT / "docs" / "reliability.md"
ORDER = ("fault", "bad input", "refusing registry", "credentials", "load", "secrets")

INTRO = """# Reliability: faults, hostile input, and nothing lost

Every row is a test of `make test` (files `tests/integration/test_faults.py`, `test_hostile_input.py`, `test_load.py`,
`test_lookup.py`, `test_modules.py`, `test_mirror.py` and `test_zz_secrets.py`) against the real distribution registry on 127.0.0.1. Faults
are injected by a proxy of ours placed in front of the registry (`tests/lab/faultproxy.py`). **Tried** is how many times
the fault was injected or the input was given, over all the registry modes listed. **Tags lost** compares
`skopeo list-tags` of the repositories involved, taken before and after (independently of the collection's client),
minus the tags the case was meant to delete. For the **credentials** rows, each host is such a proxy recording every
request; tried counts the requests the other hosts received, and the count in the outcome is how many of them carried
an `Authorization` that was not that host's own, or a credential (plain or base64) in any header.

Regenerate with `make reliability` (about {minutes} minutes on this machine).
"""


def aggregate(rows: list[dict]) -> list[dict]:
    table: dict[tuple, dict] = {}
    for row in rows:
        key = (row["category"], row["case"], row["outcome"])
        entry = table.setdefault(key, {**row, "modes": set(), "tries": 0, "tags_lost": 0, "credentials_sent": 0})
        entry["modes"].add(row["mode"])
        entry["tries"] += row["tries"]
        entry["tags_lost"] += row["tags_lost"]
        entry["credentials_sent"] += row.get("credentials_sent") or 0
    rank = {c: i for i, c in enumerate(ORDER)}
    return sorted(table.values(), key=lambda e: (rank.get(e["category"], 99), e["case"]))


def markdown(rows: list[dict], minutes: int) -> str:
    entries = aggregate(rows)
    lines = [INTRO.format(minutes=minutes), "| | case | modes | tried | outcome | tags lost |", "|---|---|---|---|---|---|"]
    for entry in entries:
        case = entry["case"].replace("|", "\\|")
        outcome = entry["outcome"].replace("|", "\\|")
        lines.append(f"| {entry['category']} | {case} | {', '.join(sorted(entry['modes']))} | {entry['tries']} "
                     f"| {outcome} | {entry['tags_lost']} |")
    total_lost = sum(e["tags_lost"] for e in entries)
    sent = sum(e["credentials_sent"] for e in entries)
    lines += ["", f"**{len(entries)} cases, {sum(e['tries'] for e in entries)} tries, tags lost: {total_lost}, "
              f"credentials sent to another host: {sent}.**", "",
              f"Machine: {platform.platform()}, Python {platform.python_version()}.", ""]
    return "\n".join(lines)


def main() -> int:
    if not ROWS.exists():
        print(f"{ROWS} is missing: run the integration tests first (make reliability)", file=sys.stderr)
        return 1
    rows = json.loads(ROWS.read_text())
    minutes = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    DOC.write_text(markdown(rows, minutes))
    lost = sum(r["tags_lost"] for r in rows)
    sent = sum(r.get("credentials_sent") or 0 for r in rows)
    print(f"{DOC}: {len(rows)} rows, tags lost: {lost}, credentials sent to another host: {sent}")
    return 1 if lost or sent else 0


if __name__ == "__main__":
    sys.exit(main())
