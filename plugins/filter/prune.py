# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention planner as filters for the prune role: the plan, and its Markdown report (pure)."""

from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import validate_repository

# The planner (module_utils.retention) is imported by the filters that use it: Ansible loads every filter file of the
# collection in each task's worker process to find one filter, so what a file imports up front every such task pays.

GC_NOTE = ("Deleting manifests frees no storage by itself: the registry reclaims blobs only when its garbage "
           "collection runs (for the distribution registry, `registry garbage-collect <config>` on the registry "
           "host). Blobs shared with kept images stay either way.")


def retention_plan(images, keep_latest=None, keep_tags=None, match_tags=None, older_than=None, order="created",
                   now=None, repository=None, group_by=None):
    """Decide every tag. ``images`` is the ``images`` list of registry_tags with details, or that whole result
    (a loop item's ``item`` then names the repository)."""
    if isinstance(images, dict):
        repository = repository or images.get("item") or images.get("repository")
        images = images.get("images")
    if not isinstance(images, list):
        raise AnsibleFilterError("retention_plan needs the images of registry_tags with details: true")
    from ansible_collections.regops.registry.plugins.module_utils.retention import make_policy, plan_retention

    try:
        policy = make_policy(keep_latest=keep_latest, keep_tags=keep_tags, match_tags=match_tags,
                             older_than=older_than, order=order, now=now, group_by=group_by)
        return plan_retention(images, policy, repository=repository)
    except InvalidInput as exc:
        raise AnsibleFilterError(str(exc)) from None


# Without one of these an entry is meant as a repository name: a typo such as 'My App' must not become a pattern that
# silently matches nothing.
REGEX_CHARACTERS = re.compile(r"[\^$*+?()\[\]{}|]")


def repository_selection(entries) -> dict:
    """``prune_repositories`` -> ``names`` (repositories named) and ``patterns`` (regular expressions matched
    against the catalog), refusing an empty list and an entry that is neither, before any request."""
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)) or not entries:
        raise AnsibleFilterError(f"prune_repositories must name at least one repository or pattern, not {entries!r}")
    names, patterns, bad = [], [], []
    for entry in map(str, entries):
        try:
            names.append(validate_repository(entry))
        except InvalidInput:
            (patterns if REGEX_CHARACTERS.search(entry) else bad).append(entry)
    if bad:
        raise AnsibleFilterError(
            f"invalid repository name {', '.join(map(json.dumps, bad))} in prune_repositories: names are lowercase "
            "[a-z0-9] components joined by '.', '_', '__' or '-', separated by '/'; a regular expression needs one "
            "of ^$*+?()[]{}|")
    return {"names": names, "patterns": patterns}


def retention_deletes(plan: dict) -> dict:
    """What registry_delete needs from a plan (one entry of its ``repositories``): the deletes, the tags to keep, and
    every tag with the digest the plan saw (so a tag pushed onto a doomed digest meanwhile refuses that delete)."""
    from ansible_collections.regops.registry.plugins.module_utils.retention import deletes_for

    return deletes_for(plan)


def _timeless(report) -> dict:
    """The report without the moments that move on every run (when it was planned, what the policy counted from)."""
    copy = json.loads(json.dumps(report))
    copy.pop("planned_at", None)
    for holder in [copy] + list(copy.get("repositories") or []):
        if isinstance(holder, dict) and isinstance(holder.get("policy"), dict):
            holder["policy"].pop("now", None)
    return copy


def retention_report(report: dict, previous=None) -> dict:
    """The report to write. ``previous`` is the text of the report already at that path (empty or None: none): when
    it holds the same plan, it is returned as it is, time included, so an unchanged plan rewrites nothing and the
    task reports no change on every scheduled run; its ``planned_at`` then tells since when the plan is the same."""
    if previous:
        try:
            before = json.loads(previous)
        except ValueError:
            return report
        if isinstance(before, dict) and _timeless(before) == _timeless(report):
            return before
    return report


def human_size(value) -> str:
    if not isinstance(value, int):
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def _cell(text) -> str:
    return str(text if text is not None else "–").replace("|", "\\|").replace("\n", " ")


def retention_markdown(plans, title="Prune plan", registry=None, check_mode=False):
    """A Markdown report of plans: every tag, kept or deleted, how and why, with sizes."""
    if isinstance(plans, dict):
        plans = [plans]
    lines = [f"# {title}", ""]
    if registry:
        lines.append(f"Registry: `{registry}`  ")
    lines += [f"Mode: {'check mode, nothing deleted' if check_mode else 'applied'}", "", f"> {GC_NOTE}", "",
              "| repository | tags | kept | deleted | as tag only | digests deleted | size of deleted images |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for plan in plans:
        s = plan["summary"]
        lines.append(f"| {_cell(plan.get('repository'))} | {s['tags']} | {s['kept']} | {s['deleted']} | "
                     f"{s['deleted_as_tag']} | {s['digests_deleted']} | {human_size(s['size_deleted'])} |")
    for plan in plans:
        lines += ["", f"## {_cell(plan.get('repository'))}", "",
                  "| tag | decision | digest | created | size | why |", "|---|---|---|---|---:|---|"]
        for entry in plan["tags"]:
            decision = entry["decision"] if entry["decision"] == "keep" else f"delete ({entry['delete_as']})"
            lines.append(f"| {_cell(entry['tag'])} | {decision} | `{entry['digest'][:19]}` | {_cell(entry['created'])} | "
                         f"{human_size(entry['size'])} | {_cell('; '.join(entry['reasons']))} |")
        if plan.get("dependents"):
            lines += ["", "Untagged manifests deleted with them (index children, attestations, referrers):", ""]
            lines += [f"- `{d['digest']}` (of {', '.join('`' + o[:19] + '`' for o in d['of'])})" for d in plan["dependents"]]
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"retention_plan": retention_plan, "retention_markdown": retention_markdown,
                "retention_deletes": retention_deletes, "retention_report": retention_report,
                "repository_selection": repository_selection}
