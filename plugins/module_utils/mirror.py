# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a mirror run does, decided from tags and digests only. Pure: the module reads, this decides, the module writes.

Per entry of ``registry_sync``: the source tags are filtered by name (``tags``, ``exclude``, ``semver``) before any
HEAD, ranked (``latest``), then compared with the destination: each selected tag is copied or unchanged, each
filtered-out tag excluded, and with ``delete_extra`` destination tags the name filters select that upstream no longer
has are deleted. Every decision carries its reason, for the result and the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.options import compile_regexes, positive_int
from ansible_collections.regops.registry.plugins.module_utils.semver_range import parse_range, version_key
from ansible_collections.regops.registry.plugins.module_utils.tag_sort import sort_tags


# The referrers fallback tag of a digest (OCI distribution 1.1): an index of that digest's referrers, kept per registry.
FALLBACK_TAG = re.compile(r"^sha(256|512)-[0-9a-f]{64}$")


@dataclass
class Selection:
    """One entry's filters, compiled (every error found before any request)."""

    tags: list = field(default_factory=list)  # compiled regexes, any may match; empty: every tag
    exclude: list = field(default_factory=list)
    semver: object = None  # SemverRange or None
    latest: int | None = None
    referrers: bool = False  # referrers are mirrored by digest: fallback tags are neither copied nor deleted as tags

    def why_not(self, tag: str) -> str | None:
        """Why the name filters leave ``tag`` out (None when they select it)."""
        if self.referrers and FALLBACK_TAG.match(tag):
            # Each registry keeps its own: the destination's lists what was written there, so a copy of the source's
            # would overwrite it, and the next run would copy it again.
            return "a referrers fallback tag: with referrers, what it lists is copied by digest"
        if self.tags and not any(r.search(tag) for r in self.tags):
            return "matches none of tags"
        hit = next((r for r in self.exclude if r.search(tag)), None)
        if hit is not None:
            return f"matches exclude '{hit.pattern}'"
        if self.semver is not None and not self.semver.matches(tag):
            return f"outside semver range '{self.semver.text}'" if version_key(tag) else "not a semver version"
        return None


def compile_selection(entry: dict, index: int, referrers: bool = False) -> Selection:
    where = f"images[{index}]"
    semver = entry.get("semver")
    return Selection(tags=compile_regexes(entry.get("tags"), f"{where}.tags"),
                     exclude=compile_regexes(entry.get("exclude"), f"{where}.exclude"),
                     semver=None if semver in (None, "") else parse_range(semver, f"{where}.semver"),
                     latest=positive_int(entry.get("latest"), f"{where}.latest"), referrers=referrers)


def filter_names(selection: Selection, tags: list[str]) -> tuple[list[str], dict[str, str]]:
    """Tags the name filters select (in the order given), and tag -> reason for the others."""
    kept, excluded = [], {}
    for tag in tags:
        reason = selection.why_not(tag)
        if reason is None:
            kept.append(tag)
        else:
            excluded[tag] = reason
    return kept, excluded


def latest_by_semver(tags: list[str]) -> bool:
    """``latest`` ranks by version when any candidate is a semver version (otherwise by image ``created``)."""
    return any(version_key(t) for t in tags)


def rank_latest(selection: Selection, tags: list[str], created: dict | None = None) -> tuple[list[str], dict[str, str]]:
    """The ``latest`` N of ``tags`` (all of them without ``latest``), and tag -> reason for the others.

    ``created``: tag -> ISO date, needed only when no candidate is semver (read from image configs, so only then).
    """
    if not selection.latest:
        return list(tags), {}
    n = selection.latest
    if latest_by_semver(tags):
        versions = sorted((t for t in tags if version_key(t)), key=lambda t: (version_key(t), t), reverse=True)
        keep = set(versions[:n])
        reasons = {t: (f"not among the {n} highest semver versions" if version_key(t)
                       else "not a semver version (latest ranks versions)") for t in tags if t not in keep}
    else:
        newest = sort_tags(tags, "created", created or {}, reverse=True)
        keep = set(newest[:n])
        reasons = {t: f"not among the {n} newest images by created" for t in tags if t not in keep}
    return [t for t in tags if t in keep], reasons


def item(tag: str, digest: str | None, reason: str, **extra) -> dict:
    return {"tag": tag, "digest": digest, "reason": reason, **extra}


def plan_entry(selected: dict[str, str], excluded: dict[str, str], source_digests: dict[str, str | None],
               destination: dict[str, str], selection: Selection, *, overwrite: bool, delete_extra: bool,
               source_tags: set[str]) -> dict:
    """Per tag: ``copied`` (to do), ``unchanged``, ``deleted`` (to do), ``excluded``, each with its reason.

    ``selected``: tag -> source digest; ``excluded``: tag -> reason; ``destination``: the target's tag -> digest;
    ``source_tags``: every tag upstream lists (a destination tag among them is never deleted).
    """
    plan = {"copied": [], "unchanged": [], "deleted": [], "excluded": []}
    for tag, digest in selected.items():
        there = destination.get(tag)
        if there == digest:
            plan["unchanged"].append(item(tag, digest, "the destination has the source digest"))
        elif there is None:
            plan["copied"].append(item(tag, digest, "missing at the destination", previous_digest=None))
        elif overwrite:
            plan["copied"].append(item(tag, digest, "moved upstream: the destination tag pointed elsewhere",
                                       previous_digest=there))
        else:
            plan["unchanged"].append(item(tag, there, "the destination tag points elsewhere and overwrite is false",
                                          source_digest=digest))
    for tag, reason in excluded.items():
        plan["excluded"].append(item(tag, source_digests.get(tag), reason))
    if delete_extra:
        for tag in sorted(destination):
            if tag not in source_tags and selection.why_not(tag) is None:
                plan["deleted"].append(item(tag, destination[tag], "upstream no longer has this tag"))
    return plan


def spare_other_entries(plans: list[dict], targets: list[str]) -> None:
    """Several entries may write to one target: a tag one of them copies or keeps is never another's extra."""
    kept: dict[str, set[str]] = {}
    for plan, target in zip(plans, targets):
        kept.setdefault(target, set()).update(i["tag"] for key in ("copied", "unchanged") for i in plan[key])
    for plan, target in zip(plans, targets):
        plan["deleted"] = [i for i in plan["deleted"] if i["tag"] not in kept[target]]


def check_distinct(source: tuple[str, str], target: tuple[str, str]) -> None:
    """``(host, repository)`` of both sides: mirroring a repository onto itself is a mistake, not a no-op."""
    if source == target:
        raise InvalidInput(f"the source and the destination are the same repository ({target[0]}/{target[1]}): "
                           "give a target, or another source_registry")


def walk_referrers(roots: list[str], listing: Callable[[str], list[dict]],
                   map_: Callable = map) -> dict[str, list[dict]]:
    """Root digest -> every referrer reachable from it (referrers of referrers too: a signature of an SBOM), each a
    descriptor with ``subject`` added, breadth first so that a referrer always comes after its subject.

    ``listing(digest)``: the descriptors of that digest's referrers; ``map_`` may run the listings of one level
    concurrently. A digest is followed once in all (the roots included): a fallback index is a mutable tag that may
    list its own subject, an ancestor or another root's referrer, and that must neither loop nor copy twice.
    """
    roots = list(dict.fromkeys(roots))
    seen = set(roots)
    found: dict[str, list[dict]] = {root: [] for root in roots}
    level = [(root, root) for root in roots]  # (root, digest whose referrers are listed)
    while level:
        answers = list(map_(lambda pair: listing(pair[1]), level))
        following = []
        for (root, subject), descriptors in zip(level, answers):
            for descriptor in descriptors:
                digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
                if not isinstance(digest, str) or digest in seen:
                    continue
                seen.add(digest)
                found[root].append({**descriptor, "subject": subject})
                following.append((root, digest))
        level = following
    return found


def referrer_item(descriptor: dict) -> dict:
    """A referrer as the result reports it."""
    return {"digest": descriptor["digest"], "media_type": descriptor.get("mediaType"),
            "artifact_type": descriptor.get("artifactType"), "subject": descriptor["subject"]}


def attach_referrers(plan: dict, to_copy: dict[str, list[dict]]) -> None:
    """Each copied or unchanged item that mirrors its source digest gets ``referrers``: those copied for that digest
    (an unchanged item whose destination tag points elsewhere, ``overwrite: false``, mirrors nothing and gets none)."""
    for key in ("copied", "unchanged"):
        for entry in plan[key]:
            mirrored = "source_digest" not in entry
            entry["referrers"] = [referrer_item(d) for d in to_copy.get(entry["digest"], [])] if mirrored else []


def mirrored_digests(plan: dict) -> list[str]:
    """The distinct source digests an entry mirrors (copied, or already there): the subjects of its referrers."""
    items = plan["copied"] + [i for i in plan["unchanged"] if "source_digest" not in i]
    return list(dict.fromkeys(i["digest"] for i in items))


def keep_written_referrers(plan: dict, written: set[str]) -> None:
    """After the copies: only the referrers really written stay in the result (one listed by a stale fallback index
    but gone upstream is not)."""
    for key in ("copied", "unchanged"):
        for entry in plan[key]:
            entry["referrers"] = [r for r in entry.get("referrers", []) if r["digest"] in written]
