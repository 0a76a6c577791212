# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a registry stores and where, counted as the registry stores it. Pure: no Ansible, no network.

Input is what ``registry_tags`` returns with ``details`` and ``blobs`` for several repositories: every tag with its
digest, ``created`` and the size of every blob (config, layers; an index's children and attestations included) its
manifest references. A blob is stored once however many images, tags and repositories reference it, so every byte
count here is a sum over a set of blob digests, never over images. Manifests themselves are not counted.

"What a prune would free" runs the retention planner (``retention.plan_retention``, the prune role's planner) and
counts the blobs that no manifest left standing references any more.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.images import parse_created
from ansible_collections.regops.registry.plugins.module_utils.retention import (
    parse_duration,
    plan_retention,
    plausible_created,
    policy_from_terms,
)

MONTHS_SHOWN = 48  # a longer span is counted by year: 48 bars still read as a histogram, 300 do not
# A policy without one of these keeps nothing and deletes every tag: no report should show that as a cleanup.
DECIDING_TERMS = ("keep_latest", "keep_tags", "match_tags", "older_than")
SOURCE_LABELS = ("org.opencontainers.image.title", "org.opencontainers.image.source", "org.label-schema.name")
STORAGE_NOTE = ("A registry frees the bytes of deleted images only when its garbage collection runs (distribution: "
                "registry garbage-collect, with the registry read-only or stopped); until then they stay on disk.")


class _Repository:
    """One repository's tags, and each of its manifests' blobs."""

    def __init__(self, entry) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("repository"), str):
            raise InvalidInput("each repository needs 'repository' and 'images' (registry_tags with repositories, "
                               "details: true and blobs: true)")
        self.name: str = entry["repository"]
        self.images: list[dict] = list(entry.get("images") or [])
        self.blobs: dict[str, dict] = {}
        for image in self.images:
            if not isinstance(image, dict) or not image.get("digest") or not isinstance(image.get("blobs"), dict):
                raise InvalidInput(f"an image of {self.name} has no 'blobs': gather the facts with registry_tags "
                                   "details: true and blobs: true")
            self.blobs[image["digest"]] = image["blobs"]

    def blob_set(self, digests=None) -> set[str]:
        return {blob for digest in (self.blobs if digests is None else digests) for blob in self.blobs[digest]}


def _repositories(facts) -> list[_Repository]:
    """``registry_tags``' result, or its ``repositories``; a single-repository result is one repository."""
    if isinstance(facts, dict) and "repositories" in facts:
        facts = facts["repositories"]
    elif isinstance(facts, dict) and "images" in facts:
        facts = [dict(facts, repository=facts.get("repository") or "")]
    if not isinstance(facts, list):
        raise InvalidInput("usage needs the result of registry_tags with repositories, details: true and blobs: true")
    repositories = [_Repository(entry) for entry in facts]
    names = [r.name for r in repositories]
    if len(set(names)) != len(names):
        raise InvalidInput("a repository appears twice in the facts")
    return repositories


def _moment(now) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    moment = parse_created(str(now))
    if moment is None:
        raise InvalidInput(f"now: '{now}' is not an RFC 3339 date")
    return moment


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def blob_sizes(repositories: list[_Repository]) -> dict[str, int]:
    """Every blob of the report once, with its size (content-addressed: one digest, one size)."""
    sizes: dict[str, int] = {}
    for repository in repositories:
        for blobs in repository.blobs.values():
            sizes.update(blobs)
    return sizes


def storage(repositories: list[_Repository], sizes: dict[str, int]) -> list[dict]:
    """Per repository: its tags, images, and the bytes of its distinct blobs, of which ``shared_bytes`` are referenced
    by another reported repository too. Largest first."""
    blob_sets = {r.name: r.blob_set() for r in repositories}
    holders: dict[str, int] = {}
    for blobs in blob_sets.values():
        for blob in blobs:
            holders[blob] = holders.get(blob, 0) + 1
    entries = []
    for repository in repositories:
        blobs = blob_sets[repository.name]
        entries.append({"repository": repository.name, "tags": len(repository.images),
                        "images": len(repository.blobs), "blobs": len(blobs),
                        "bytes": sum(sizes[b] for b in blobs),
                        "shared_bytes": sum(sizes[b] for b in blobs if holders[b] > 1)})
    return sorted(entries, key=lambda e: (-e["bytes"], e["repository"]))


def _period(moment: datetime, yearly: bool) -> str:
    return f"{moment.year:04d}" if yearly else f"{moment.year:04d}-{moment.month:02d}"


def _periods(first: datetime, last: datetime, yearly: bool) -> list[str]:
    """Every month (or year) from the first to the last, empty ones included: gaps are part of the picture."""
    if yearly:
        return [f"{y:04d}" for y in range(first.year, last.year + 1)]
    out, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def age_histogram(repositories: list[_Repository]) -> dict:
    """Tags and images (distinct digests) by the month, or year, their image was created."""
    dated, undated_tags, undated_images = [], 0, set()
    for repository in repositories:
        for image in repository.images:
            moment = plausible_created(image.get("created"))
            if moment is None:
                undated_tags += 1
                undated_images.add(image["digest"])
            else:
                dated.append((moment, image["digest"]))
    if not dated:
        return {"unit": "month", "periods": [], "undated": {"tags": undated_tags, "images": len(undated_images)}}
    first, last = min(m for m, _d in dated), max(m for m, _d in dated)
    yearly = (last.year - first.year) * 12 + last.month - first.month + 1 > MONTHS_SHOWN
    counts = {p: {"period": p, "tags": 0, "images": set()} for p in _periods(first, last, yearly)}
    for moment, digest in dated:
        bucket = counts[_period(moment, yearly)]
        bucket["tags"] += 1
        bucket["images"].add(digest)
    periods = [dict(c, images=len(c["images"])) for c in counts.values()]
    return {"unit": "year" if yearly else "month", "periods": periods,
            "undated": {"tags": undated_tags, "images": len(undated_images)}}


def _source(labels) -> str | None:
    """What the image says it is (its title or source label), to tell images apart in the tables."""
    labels = labels if isinstance(labels, dict) else {}
    return next((str(labels[k]) for k in SOURCE_LABELS if labels.get(k)), None)


def distinct_images(repositories: list[_Repository]) -> list[dict]:
    """One entry per digest across the report: its size (distinct blobs), date, and where it is tagged."""
    by_digest: dict[str, dict] = {}
    for repository in repositories:
        for image in repository.images:
            entry = by_digest.setdefault(image["digest"], {
                "digest": image["digest"], "media_type": image.get("media_type"), "created": image.get("created"),
                "size": sum(image["blobs"].values()), "source": _source(image.get("labels")), "tags": 0,
                "repositories": {}})
            entry["tags"] += 1
            entry["repositories"].setdefault(repository.name, []).append(image["tag"])
    return [dict(e, repositories=[{"repository": name, "tags": sorted(tags)} for name, tags in
                                  sorted(e["repositories"].items())]) for e in by_digest.values()]


def largest_images(images: list[dict], top: int) -> list[dict]:
    return sorted(images, key=lambda i: (-i["size"], i["digest"]))[:top]


def oldest_images(images: list[dict], top: int) -> list[dict]:
    dated = [(plausible_created(i["created"]), i) for i in images]
    return [i for _m, i in sorted(((m, i) for m, i in dated if m), key=lambda p: (p[0], p[1]["digest"]))][:top]


def stale_tags(repositories: list[_Repository], now: datetime, after, top: int) -> dict:
    """Tags whose image is older than ``after``: a tag points at the same image since that image was built, unless
    it was moved, so the image's age is the longest the tag can have stood still."""
    limit = now - parse_duration(after)
    found = []
    for repository in repositories:
        for image in repository.images:
            moment = plausible_created(image.get("created"))
            if moment is not None and moment < limit:
                found.append((moment, repository.name, image))
    found.sort(key=lambda f: (f[0], f[1], f[2]["tag"]))
    per_repository: dict[str, int] = {}
    for _moment_, name, _image in found:
        per_repository[name] = per_repository.get(name, 0) + 1
    most_first = sorted(per_repository.items(), key=lambda p: (-p[1], p[0]))
    return {"older_than": int(parse_duration(after).total_seconds()), "before": _iso(limit), "count": len(found),
            "repositories": [{"repository": n, "tags": c} for n, c in most_first],
            "oldest": [{"repository": name, "tag": image["tag"], "digest": image["digest"],
                        "created": image.get("created")} for _m, name, image in found[:top]]}


def has_policy(terms) -> bool:
    return isinstance(terms, dict) and any(terms.get(t) not in (None, "", []) for t in DECIDING_TERMS)


def prune_frees(repositories: list[_Repository], sizes: dict[str, int], terms: dict, now: datetime) -> dict:
    """The retention plan of every repository, and the blobs that no manifest left standing references: what the
    registry's garbage collection would then free. A blob that a kept image of any reported repository references
    stays; so does one that an untagged manifest or an unreported repository references (the report does not see
    those, so the figure is what these repositories alone would free)."""
    policy = policy_from_terms(dict({k: v for k, v in terms.items() if v not in (None, "")}, now=_iso(now)))
    plans = {r.name: plan_retention(r.images, policy, repository=r.name) for r in repositories}
    kept, doomed = set(), {}
    for repository in repositories:
        deleted = set(plans[repository.name]["delete_digests"])
        kept |= repository.blob_set(d for d in repository.blobs if d not in deleted)
        doomed[repository.name] = repository.blob_set(d for d in repository.blobs if d in deleted)
    freed = set().union(*doomed.values()) - kept if doomed else set()
    entries = []
    for repository in repositories:
        summary = plans[repository.name]["summary"]
        entries.append({"repository": repository.name, "tags": summary["tags"], "tags_deleted": summary["deleted"],
                        "digests_deleted": summary["digests_deleted"],
                        "frees_bytes": sum(sizes[b] for b in doomed[repository.name] - kept)})
    return {"policy": policy.describe(), "tags": sum(e["tags"] for e in entries),
            "tags_deleted": sum(e["tags_deleted"] for e in entries),
            "digests_deleted": sum(e["digests_deleted"] for e in entries),
            "frees_bytes": sum(sizes[b] for b in freed), "frees_blobs": len(freed),
            "keeps_bytes": sum(sizes[b] for b in kept), "note": STORAGE_NOTE,
            "repositories": sorted(entries, key=lambda e: (-e["frees_bytes"], e["repository"]))}


def usage_summary(facts, policy=None, now=None, stale_after="365d", top: int = 10, registry: str | None = None) -> dict:
    """The whole report as data: what the JSON file holds and the HTML page shows."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidInput(f"top must be a whole number of at least 1, not '{top}'")
    repositories = _repositories(facts)
    moment = _moment(now)
    sizes = blob_sizes(repositories)
    images = distinct_images(repositories)
    return {
        "registry": registry,
        "generated_at": _iso(moment),
        "total_bytes": sum(sizes.values()),
        "blobs": len(sizes),
        "tags": sum(len(r.images) for r in repositories),
        "images": len(images),
        "repositories": storage(repositories, sizes),
        "age": age_histogram(repositories),
        "oldest_images": oldest_images(images, top),
        "stale_tags": stale_tags(repositories, moment, stale_after, top),
        "largest_images": largest_images(images, top),
        "prune": prune_frees(repositories, sizes, policy, moment) if has_policy(policy) else None,
    }
