# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune reports of shards (parts of one registry's repositories, pruned in parallel) merged into one (pure)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.filter.prune import _timeless

# What every shard of one prune must agree on (the policy without the moment each shard counted back from).
SHARED = ("registry", "check_mode", "policy", "storage_note")


def _same_everywhere(reports: list[dict], key: str):
    values = [_timeless({key: r.get(key)})[key] for r in reports]
    if any(v != values[0] for v in values[1:]):
        raise AnsibleFilterError(f"retention_merge: the reports differ in {key!r}; they are not shards of one prune")
    return reports[0].get(key)


def retention_merge(reports, report=None) -> dict:
    """One report of the prune role (``prune_result``, or a report file's JSON) made of the reports of shards:
    repositories in name order, summary summed, ``planned_at`` the earliest, ``changed`` if any shard changed,
    ``refused`` of every shard. ``report`` names the merged report's files, as the role's own ``report`` key."""
    if isinstance(reports, dict):
        reports = [reports]
    if not isinstance(reports, list) or not reports or not all(isinstance(r, dict) for r in reports):
        raise AnsibleFilterError("retention_merge needs a non-empty list of prune reports (prune_result of each shard)")
    repositories = sorted((p for r in reports for p in r.get("repositories") or []), key=lambda p: p["repository"])
    names = [p["repository"] for p in repositories]
    if len(set(names)) != len(names):
        raise AnsibleFilterError("retention_merge: a repository is in more than one shard")
    # The earliest shard first: its planned_at and its policy's now are the merged report's.
    reports = sorted(reports, key=lambda r: (r.get("planned_at") is None, r.get("planned_at") or ""))
    merged = {key: _same_everywhere(reports, key) for key in SHARED if any(key in r for r in reports)}
    merged["planned_at"] = reports[0].get("planned_at")
    from ansible_collections.regops.registry.plugins.module_utils.retention import totals  # see filter/prune.py

    merged["summary"] = totals(repositories)
    merged["report"] = report
    merged["repositories"] = repositories
    if any("changed" in r for r in reports):
        merged["changed"] = any(r.get("changed") for r in reports)
    if any("refused" in r for r in reports):
        merged["refused"] = [item for r in reports for item in r.get("refused") or []]
    return merged


class FilterModule:
    def filters(self):
        return {"retention_merge": retention_merge}
