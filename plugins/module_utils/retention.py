# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention planner: every tag of a repository with a decision (keep or delete) and its reasons. Pure.

Input is what ``registry_tags`` with ``details`` returns (one facts dict per tag). Decisions are per tag;
digests follow from them: a digest that any kept tag points to, directly or as part of a kept index or as
the subject of a kept artifact, is never deleted (its other tags go as tags only). Whatever belongs to a
deleted image goes with it: index children and attestations, and signatures, SBOMs and other referrers,
whether found through their ``subject`` or through the ``sha256-<hex>[.suffix]`` fallback tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.images import parse_created
from ansible_collections.regops.registry.plugins.module_utils.options import compile_regex, compile_regexes
from ansible_collections.regops.registry.plugins.module_utils.tag_sort import semver_key

ORDERS = ("created", "semver")
DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# cosign's signature/attestation/SBOM tags and the OCI 1.1 referrers tag schema (no suffix).
FALLBACK_TAG_RE = re.compile(r"^sha256-([0-9a-f]{64})(?:\.([A-Za-z0-9_-]+))?$")
# Reproducible builds date images 1970-01-01 (SOURCE_DATE_EPOCH=0); no real image predates this.
EARLIEST_PLAUSIBLE = datetime(1980, 1, 1, tzinfo=timezone.utc)

KEEP, DELETE = "keep", "delete"


def parse_duration(value) -> timedelta:
    """``30d``, ``12h``, ``1w2d``, ``90m``, ``45s`` (or a number of seconds) -> timedelta."""
    if isinstance(value, bool):
        raise InvalidInput(f"older_than: '{value}' is not a duration such as 30d or 12h")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            parts = DURATION_RE.findall(text)
            if not parts or DURATION_RE.sub("", text).strip():
                raise InvalidInput(f"older_than: '{value}' is not a duration such as 30d, 12h, 1w or 90m")
            seconds = sum(int(n) * UNITS[unit] for n, unit in parts)
    if seconds < 0:
        raise InvalidInput(f"older_than must not be negative, not {value}")
    return timedelta(seconds=seconds)


def plausible_created(value) -> datetime | None:
    """The creation date when it can be believed: None for no date, or one before 1980 (reproducible builds)."""
    moment = parse_created(value)
    return moment if moment is not None and moment >= EARLIEST_PLAUSIBLE else None


@dataclass(frozen=True)
class Policy:
    keep_latest: int | None = None
    keep_tags: tuple = ()
    match_tags: tuple = ()
    older_than: timedelta | None = None
    order: str = "created"
    now: datetime | None = None
    group_by: re.Pattern | None = None

    def group_of(self, tag: str) -> str:
        """The group a tag is ranked in: the first capture of ``group_by`` (a branch name, say), or one group."""
        match = self.group_by.search(tag) if self.group_by else None
        return (match.group(1) or "") if match else ""

    def describe(self) -> dict:
        return {"keep_latest": self.keep_latest, "group_by": self.group_by.pattern if self.group_by else None,
                "keep_tags": [p.pattern for p in self.keep_tags],
                "match_tags": [p.pattern for p in self.match_tags],
                "older_than": int(self.older_than.total_seconds()) if self.older_than is not None else None,
                "order": self.order, "now": _iso(self.now)}


def make_policy(keep_latest=None, keep_tags=None, match_tags=None, older_than=None, order="created",
                now=None, group_by=None) -> Policy:
    """Check every term of a policy; a wrong one raises InvalidInput before anything is read or deleted."""
    if keep_latest is not None:
        if isinstance(keep_latest, bool) or not isinstance(keep_latest, int) and not str(keep_latest).isdigit():
            raise InvalidInput(f"keep_latest must be a whole number of images, not '{keep_latest}'")
        keep_latest = int(keep_latest)
        if keep_latest < 0:
            raise InvalidInput(f"keep_latest must not be negative, not {keep_latest}")
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ORDERS)}, not '{order}'")
    for name, value in (("keep_tags", keep_tags), ("match_tags", match_tags)):
        if isinstance(value, str):
            raise InvalidInput(f"{name} must be a list of regular expressions, not the string '{value}'")
    if now is None:
        moment = datetime.now(timezone.utc)
    elif isinstance(now, datetime):
        moment = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    else:
        moment = parse_created(str(now))
        if moment is None:
            raise InvalidInput(f"now: '{now}' is not an RFC 3339 date")
    group = compile_regex(group_by or None, "group_by")
    if group is not None and group.groups < 1:
        raise InvalidInput(f"group_by: '{group_by}' needs a capture group, such as ^(.+)-\\d+$ for <branch>-<build>")
    return Policy(group_by=group, keep_latest=keep_latest, keep_tags=tuple(compile_regexes(keep_tags, "keep_tags")),
                  match_tags=tuple(compile_regexes(match_tags, "match_tags")),
                  older_than=parse_duration(older_than) if older_than not in (None, "") else None,
                  order=order, now=moment)


POLICY_TERMS = ("keep_latest", "keep_tags", "match_tags", "older_than", "order", "now", "group_by")


def policy_from_terms(terms: dict) -> Policy:
    """``make_policy`` from a mapping of terms (a module option), refusing a term it does not know."""
    unknown = sorted(set(terms) - set(POLICY_TERMS))
    if unknown:
        raise InvalidInput(f"unknown retention term {', '.join(unknown)}: the terms are {', '.join(POLICY_TERMS)}")
    return make_policy(**{k: v for k, v in terms.items() if v is not None})


def deletes_for(plan: dict) -> dict:
    """What registry_delete needs from a plan (one entry of its ``repositories``): the deletes, the tags to keep, and
    every tag with the digest the plan saw (so a tag pushed onto a doomed digest meanwhile refuses that delete)."""
    return {"repository": plan["repository"], "tags": plan["delete_tags"], "digests": plan["delete_digests"],
            "protect_tags": plan["keep_tags"], "expected_tags": {e["tag"]: e["digest"] for e in plan["tags"]}}


def deletes_of(plans: list[dict]) -> list[dict]:
    """``deletes_for`` each plan that deletes something."""
    return [deletes_for(plan) for plan in plans if plan["summary"]["deleted"] > 0]


def totals(plans: list[dict]) -> dict:
    """The counts over every plan."""
    summaries = [plan["summary"] for plan in plans]
    return {"repositories": len(plans), "tags": sum(s["tags"] for s in summaries),
            "kept": sum(s["kept"] for s in summaries), "deleted": sum(s["deleted"] for s in summaries)}


def emptied(plans: list[dict]) -> list[str]:
    """The repositories with tags of which a plan keeps none (the role refuses those unless told)."""
    return [plan["repository"] for plan in plans if plan["summary"]["tags"] and not plan["summary"]["kept"]]


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def fallback_subject(tag: str) -> str | None:
    """The digest a ``sha256-<hex>.sig``-style tag belongs to."""
    match = FALLBACK_TAG_RE.match(tag)
    return "sha256:" + match.group(1) if match else None


def dependents_of(image: dict) -> list[str]:
    """Manifests that exist for this one: index children and attestations, and referrers when known."""
    out = [m["digest"] for m in image.get("manifests") or [] if isinstance(m, dict) and m.get("digest")]
    out += [d for d in image.get("attestations") or [] if isinstance(d, str)]
    out += [d for d in image.get("referrers") or [] if isinstance(d, str)]
    return out


class _Repository:
    """The facts of one repository indexed for planning."""

    def __init__(self, images: list) -> None:
        self.by_tag: dict[str, dict] = {}
        for image in images:
            if not isinstance(image, dict) or not isinstance(image.get("tag"), str) or not image.get("digest"):
                raise InvalidInput("each image needs at least 'tag' and 'digest' (the images of registry_tags with details)")
            if image["tag"] in self.by_tag:
                raise InvalidInput(f"the tag {image['tag']} appears twice in the images")
            self.by_tag[image["tag"]] = image
        self.tags_on: dict[str, list[str]] = {}
        for tag, image in sorted(self.by_tag.items()):
            self.tags_on.setdefault(image["digest"], []).append(tag)
        self.facts = {image["digest"]: image for image in self.by_tag.values()}
        self.dependents = {digest: dependents_of(image) for digest, image in self.facts.items()}
        # A referrer tagged under its own name (an OCI 1.1 manifest with ``subject``) belongs to its subject too.
        self.subject_of = {tag: fallback_subject(tag) or image.get("subject") for tag, image in self.by_tag.items()}
        for tag, subject in self.subject_of.items():
            if subject:
                self.dependents.setdefault(subject, []).append(self.by_tag[tag]["digest"])

    def closure(self, digests) -> set[str]:
        """The digests and everything that belongs to them (children, attestations, referrers, recursively)."""
        seen: set[str] = set()
        pending = list(digests)
        while pending:
            digest = pending.pop()
            if digest not in seen:
                seen.add(digest)
                pending.extend(self.dependents.get(digest, ()))
        return seen


def plan_retention(images, policy: Policy, repository: str | None = None) -> dict:
    """Every tag with ``decision`` keep/delete and ``reasons``; the deletes to make; a summary."""
    repo = _Repository(list(images or []))
    entries = {tag: {"tag": tag, "digest": image["digest"], "media_type": image.get("media_type"),
                     "created": image.get("created"), "size": image.get("size"), "reasons": [],
                     "kind": "artifact" if repo.subject_of[tag] else _kind(image), "rank": None}
               for tag, image in repo.by_tag.items()}
    regular = [tag for tag in sorted(entries) if not repo.subject_of[tag]]

    candidates = [tag for tag in regular if _is_candidate(tag, repo.by_tag[tag], policy, entries[tag]["reasons"])]
    ranks = _rank(candidates, repo, policy)
    keep = set()
    for tag in regular:
        entry = entries[tag]
        kept_by = next((p.pattern for p in policy.keep_tags if p.search(tag)), None)
        if kept_by is not None:
            entry["reasons"].append(f"matches keep_tags '{kept_by}'")
        if tag in candidates:
            rank = ranks[tag]
            entry["rank"] = rank
            if policy.keep_latest is not None and rank <= policy.keep_latest:
                entry["reasons"].append(f"image #{rank} of the {policy.keep_latest} newest kept ({policy.order} order"
                                        + (f", group '{policy.group_of(tag)}')" if policy.group_by else ")"))
                kept_by = kept_by or "keep_latest"
            elif kept_by is None:
                group = f" of group '{policy.group_of(tag)}'" if policy.group_by else ""
                entry["reasons"].append(f"candidate beyond the {policy.keep_latest} newest images{group} (#{rank})"
                                        if policy.keep_latest is not None else "candidate, and no term keeps it")
        if tag not in candidates or kept_by is not None:
            keep.add(tag)

    protected = repo.closure(entries[t]["digest"] for t in keep)
    doomed = repo.closure(entries[t]["digest"] for t in regular if t not in keep) - protected
    # Artifacts follow their subject: kept with a kept image, deleted with a deleted one, left alone otherwise.
    for tag in sorted(entries):
        subject = repo.subject_of[tag]
        if not subject:
            continue
        entry = entries[tag]
        if subject in protected or entry["digest"] in protected:
            entry["reasons"].append(f"belongs to {subject}, which is kept")
            keep.add(tag)
        elif subject in doomed:
            entry["reasons"].append(f"belongs to {subject}, which is deleted")
        else:
            entry["reasons"].append(f"belongs to {subject}, which no tag of this repository names: left alone")
            keep.add(tag)
    protected = repo.closure(entries[t]["digest"] for t in keep)

    delete_tags, tagged_digests = [], []
    for tag in sorted(entries):
        entry = entries[tag]
        if tag in keep:
            entry["decision"], entry["delete_as"] = KEEP, None
            continue
        entry["decision"] = DELETE
        if entry["digest"] in protected:
            entry["delete_as"] = "tag"
            entry["reasons"].append(_why_digest_stays(entry["digest"], keep, entries, repo))
            delete_tags.append(tag)
        else:
            entry["delete_as"] = "digest"
            if entry["digest"] not in tagged_digests:
                tagged_digests.append(entry["digest"])
    dependents: dict[str, list[str]] = {}
    for owner in tagged_digests:
        for digest in sorted(repo.closure([owner]) - protected):
            if digest not in repo.tags_on:  # untagged: nothing else would ever delete it
                dependents.setdefault(digest, []).append(owner)
    deleted = [e for e in entries.values() if e["decision"] == DELETE]
    ordered = sorted(entries.values(), key=lambda e: (e["decision"] != KEEP, _created_key(e), e["tag"]))
    return {
        "repository": repository,
        "policy": policy.describe(),
        "tags": ordered,
        "keep_tags": sorted(keep),
        "delete_tags": delete_tags,
        # Tagged manifests first, then what belongs to them: an interrupted run never leaves a tagged index without
        # its children, and the next run finds and finishes the rest.
        "delete_digests": tagged_digests + sorted(dependents),
        "dependents": [{"digest": d, "of": owners} for d, owners in sorted(dependents.items())],
        "summary": {"tags": len(entries), "kept": len(keep), "deleted": len(deleted),
                    "deleted_as_tag": len(delete_tags), "digests_deleted": len(tagged_digests) + len(dependents),
                    "size_deleted": sum(repo.facts[d].get("size") or 0 for d in tagged_digests)},
    }


def _kind(image: dict) -> str:
    if image.get("manifests") is not None:
        return "index"
    return "artifact" if image.get("artifact_type") else "image"


def _is_candidate(tag: str, image: dict, policy: Policy, reasons: list) -> bool:
    if policy.match_tags and not any(p.search(tag) for p in policy.match_tags):
        reasons.append("not matched by match_tags")
        return False
    if policy.older_than is not None:
        created = plausible_created(image.get("created"))
        if created is None:
            reasons.append(f"age unknown (created {image.get('created') or 'missing'}): never older_than")
            return False
        if created > policy.now - policy.older_than:
            reasons.append(f"created {_iso(created)}, within older_than")
            return False
    return True


def _rank(candidates: list[str], repo: _Repository, policy: Policy) -> dict[str, int]:
    """Tag -> rank of its image within its group (1 = newest). Ties: highest version and name among the image's tags
    in the group, then digest."""
    groups: dict[str, dict[str, list[str]]] = {}
    for tag in candidates:
        groups.setdefault(policy.group_of(tag), {}).setdefault(repo.by_tag[tag]["digest"], []).append(tag)
    ranks = {}
    for tags_of in groups.values():
        def key(digest: str, tags_of=tags_of) -> tuple:
            created = plausible_created(repo.facts[digest].get("created"))
            dated = (1, created.timestamp()) if created else (0, 0.0)  # undated count as the oldest
            version = max(semver_key(t) for t in tags_of[digest])
            if policy.order == "semver":
                return (version, dated, digest)
            return (dated, version, digest)

        for index, digest in enumerate(sorted(tags_of, key=key, reverse=True)):
            for tag in tags_of[digest]:
                ranks[tag] = index + 1
    return ranks


def _created_key(entry: dict) -> tuple:
    created = plausible_created(entry.get("created"))
    return (0, -created.timestamp()) if created else (1, 0.0)


def _why_digest_stays(digest: str, keep: set, entries: dict, repo: _Repository) -> str:
    same = [t for t in repo.tags_on.get(digest, ()) if t in keep]
    if same:
        return f"deleted as a tag only: {digest} stays for {', '.join(same[:3])}{'…' if len(same) > 3 else ''}"
    holders = sorted(t for t in keep if digest in repo.closure([entries[t]["digest"]]))[:3]
    return f"deleted as a tag only: {digest} belongs to kept {', '.join(holders)}"
