# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deleting tags, manifests and blobs without taking anything else with them.

A tag delete removes that tag only: the OCI tag DELETE where the registry has it, otherwise the tag
is pointed at a unique throwaway manifest (the same manifest plus an annotation, so no new blob is
needed) and that throwaway digest is deleted. Before anything is written, one probe DELETE of a digest
that cannot exist tells whether deletes work at all, so a refusal never leaves a throwaway behind.

A caller that chose the deletes from an earlier read (the prune role plans from facts) passes what it saw, tag ->
digest. A digest that carries a tag the caller did not see (CI pushed it meanwhile), or a tag that moved to another
digest, is refused, not deleted: the digests are checked again just before their DELETEs.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.facts import resolve_tags

# sha256 of nothing anyone would push: a DELETE of it answers 404 where deletes work, 405 where they do not.
PROBE_DIGEST = "sha256:" + "0" * 64
THROWAWAY_ANNOTATION = "io.regops.registry.delete-marker"


class DeletesDisabled(RegistryError):
    """The registry refuses deletes (405 UNSUPPORTED, read-only mode)."""


@dataclass
class DeletePlan:
    """What a delete call will do, computed from reads only (check mode reports exactly this)."""

    tag_digests: dict[str, str]  # every tag of the repository -> digest (the blast radius)
    tags: list[str] = field(default_factory=list)  # present tags to delete
    digests: list[str] = field(default_factory=list)  # present digests to delete
    blobs: list[str] = field(default_factory=list)  # present blobs to delete
    absent: list[dict] = field(default_factory=list)  # asked for, not there
    expected: dict[str, str] | None = None  # tag -> digest as the caller saw them (None: no race guard)
    refused: list[dict] = field(default_factory=list)  # deletes not made because the registry changed meanwhile
    _by_digest: dict[str, list[str]] | None = field(default=None, repr=False, compare=False)

    def tags_on(self, digest: str) -> list[str]:
        # Indexed once (100,000 tags: a scan per digest would be quadratic); set_tags drops the index.
        if self._by_digest is None:
            index: dict[str, list[str]] = {}
            for tag, on in sorted(self.tag_digests.items()):
                index.setdefault(on, []).append(tag)
            self._by_digest = index
        return list(self._by_digest.get(digest, ()))

    def set_tags(self, gone=(), now=None) -> None:
        """Forget the tags in ``gone`` and learn the tag -> digest pairs in ``now``."""
        for tag in gone:
            self.tag_digests.pop(tag, None)
        self.tag_digests.update(now or {})
        self._by_digest = None

    def unexpected_on(self, digest: str) -> list[str]:
        """Tags on ``digest`` now that the caller did not see on it (none without expectations)."""
        if self.expected is None:
            return []
        return [t for t in self.tags_on(digest) if self.expected.get(t) != digest]

    def refuse_digest(self, digest: str, unexpected: list[str]) -> None:
        self.digests.remove(digest)
        self.refused.append({
            "type": "digest", "name": digest, "digest": digest, "unexpected_tags": unexpected,
            "expected_tags": sorted(t for t, d in (self.expected or {}).items() if d == digest),
            "reason": f"{', '.join(unexpected)} now also point{'s' if len(unexpected) == 1 else ''} at this digest, "
                      "which the list of deletes did not see: not deleted, so every tag on it stays"})

    def refuse_tag(self, tag: str, digest: str | None) -> None:
        if tag in self.tags:
            self.tags.remove(tag)
        expected = self.tag_digests.get(tag) if self.expected is None else self.expected.get(tag)
        self.refused.append({"type": "tag", "name": tag, "digest": digest, "expected_digest": expected,
                             "reason": "the tag moved to another digest since the list of deletes was made: left on "
                                       "its new digest"})

    def refuse(self, kind: str, name: str, digest: str | None, reason: str, **extra) -> None:
        """Take one delete out of the plan, with the sentence that says why (the service cannot do it)."""
        for items in (self.tags, self.digests, self.blobs):
            if name in items:
                items.remove(name)
        self.refused.append({"type": kind, "name": name, "digest": digest, **extra, "reason": reason})

    def after(self) -> dict[str, str]:
        """The repository's tags after the plan (for diff)."""
        gone = set(self.tags)
        for digest in self.digests:
            gone.update(self.tags_on(digest))
        return {t: d for t, d in sorted(self.tag_digests.items()) if t not in gone}

    @property
    def changes(self) -> bool:
        return bool(self.tags or self.digests or self.blobs)


def listed_tags(client, repository: str) -> list[str]:
    """The tags of a repository (none for a repository that does not exist)."""
    try:
        return client.list_tags(repository)
    except RegistryError as exc:
        if exc.status == 404:
            return []
        raise


def map_tags(client, repository: str, concurrency: int = 8) -> dict[str, str]:
    """Every tag of a repository with its digest."""
    resolved = resolve_tags(client, repository, listed_tags(client, repository), concurrency)
    return {tag: digest for tag, digest in resolved.items() if digest is not None}


class ProtectedTag(RegistryError):
    """The delete would take a tag that must stay (it moved onto a doomed digest since the plan was made)."""


def current_tags(client, repository: str, expected: dict | None, tags=(), concurrency: int = 8) -> dict[str, str]:
    """Every tag with its digest. With ``expected`` (what the caller read moments ago, for 100,000 tags maybe),
    one listing, and a HEAD only for the tags the caller did not see and the ``tags`` to delete alone: the rest is
    not read twice."""
    if expected is None:
        return map_tags(client, repository, concurrency)
    listed = listed_tags(client, repository)
    wanted = set(tags)
    again = [t for t in listed if t not in expected or t in wanted]
    resolved = resolve_tags(client, repository, again, concurrency)
    known = {t: expected[t] for t in listed if t in expected and t not in wanted}
    known.update({t: d for t, d in resolved.items() if d is not None})
    return known


def plan_delete(client, repository: str, *, tags=(), digests=(), blobs=(), protect=(), expected=None,
                concurrency: int = 8) -> DeletePlan:
    """Read what the deletes would touch. ``protect`` names tags that must survive: if any would go, nothing is
    deleted (a plan made earlier, such as the prune role's, may no longer match the registry). ``expected`` (tag ->
    digest, as the caller saw them) refuses single deletes that the registry's changes since then make unsafe, and
    spares the reads of the tags it names (see ``current_tags``)."""
    tag_digests = current_tags(client, repository, expected, tags, concurrency)
    plan = DeletePlan(tag_digests=tag_digests, expected=None if expected is None else dict(expected))
    for tag in dict.fromkeys(tags):
        if tag not in tag_digests:
            plan.absent.append({"type": "tag", "name": tag})
        elif plan.expected is not None and plan.expected.get(tag, tag_digests[tag]) != tag_digests[tag]:
            plan.refuse_tag(tag, tag_digests[tag])
        else:
            plan.tags.append(tag)
    known_digests = set(tag_digests.values())
    for digest in dict.fromkeys(digests):
        if digest in known_digests or client.head_manifest(repository, digest) is not None:
            plan.digests.append(digest)
        else:
            plan.absent.append({"type": "digest", "name": digest})
    for digest in dict.fromkeys(blobs):
        if client.head_blob(repository, digest) is not None:
            plan.blobs.append(digest)
        else:
            plan.absent.append({"type": "blob", "name": digest})
    refuse_changed_digests(client, repository, plan)
    # A tag whose digest is also deleted goes with it (named in that digest's removed_tags): no separate tag delete.
    doomed = set(plan.digests)
    plan.tags = [tag for tag in plan.tags if tag_digests[tag] not in doomed]
    remaining = plan.after()
    lost = sorted(t for t in dict.fromkeys(protect) if t in tag_digests and t not in remaining)
    if lost:
        raise ProtectedTag(f"the deletes would also remove {', '.join(lost)}, which must stay (each now points at a "
                           "digest to delete); nothing was deleted", operation=f"planning deletes in {repository}")
    return plan


def refuse_changed_digests(client, repository: str, plan: DeletePlan) -> list[dict]:
    """Refuse each digest that carries a tag the caller did not see on it, and what belongs to it; the refusals."""
    before = len(plan.refused)
    refused = []
    for digest in list(plan.digests):
        unexpected = plan.unexpected_on(digest)
        if unexpected:
            plan.refuse_digest(digest, unexpected)
            refused.append(digest)
    if refused:
        hold_back_dependents(client, repository, plan, refused)
    return plan.refused[before:]


def hold_back_dependents(client, repository: str, plan: DeletePlan, refused: list[str]) -> None:
    """Untagged digests to delete that belong to a refused one (children of a refused index, referrers whose
    subject is refused) stay with it: the tags that stay must still pull and keep their signatures."""
    held = set(refused)
    untagged = [d for d in plan.digests if not plan.tags_on(d)]
    manifests = {d: client.get_manifest(repository, d, missing_ok=True) for d in untagged + list(refused)}
    changed = True
    while changed:
        changed = False
        for digest in [d for d in untagged if d in plan.digests]:
            owner = next((h for h in held if belongs_to(manifests.get(digest), digest, manifests.get(h))), None)
            if owner is not None:
                plan.digests.remove(digest)
                plan.refused.append({"type": "digest", "name": digest, "digest": digest, "of": owner,
                                     "reason": f"belongs to {owner}, whose delete was refused: kept with it"})
                held.add(digest)
                changed = True


def belongs_to(manifest, digest: str, owner) -> bool:
    """Whether ``digest`` is a child of the index ``owner`` or a referrer whose subject is ``owner``."""
    if owner is None:
        return False
    children = {c.get("digest") for c in (owner.data.get("manifests") or []) if isinstance(c, dict)}
    subject = (manifest.data.get("subject") or {}) if manifest is not None else {}
    return digest in children or (isinstance(subject, dict) and subject.get("digest") == owner.digest)


def recheck_before_digest_deletes(client, repository: str, plan: DeletePlan, concurrency: int = 8) -> list[dict]:
    """The race guard, just before the digest DELETEs: is a tag that must stay now on a digest to delete?

    A DELETE of a digest takes whatever tags are on it then. Read again: the tag list, and a HEAD of every tag that
    is not going with a doomed digest (tags not seen before, and kept tags, which may have moved onto a doomed digest
    since the facts were read, minutes ago at 100,000 tags). The tags on the doomed digests are not read again: if
    one moved away, the DELETE no longer takes it. A tag gone since is forgotten. Run only when digests are deleted
    for real, so it costs nothing in check mode, and a read per kept tag where a prune deletes digests.
    """
    if plan.expected is None or not plan.digests:
        return []
    doomed = set(plan.digests)
    listed = listed_tags(client, repository)
    present = set(listed)
    now = resolve_tags(client, repository, [t for t in listed if plan.tag_digests.get(t) not in doomed], concurrency)
    plan.set_tags(gone=[t for t in plan.tag_digests if t not in present] + [t for t, d in now.items() if d is None],
                  now={t: d for t, d in now.items() if d is not None})
    return refuse_changed_digests(client, repository, plan)


def refusal_summary(refusal: dict) -> str:
    if refusal.get("unexpected_tags"):
        return f"{refusal['name']} (now also tagged {', '.join(refusal['unexpected_tags'])})"
    if refusal.get("of"):
        return f"{refusal['name']} (belongs to {refusal['of']})"
    return f"{refusal['name']} (moved to {refusal['digest']})"


def probe_deletes(client, repository: str, api=None) -> None:
    """Fail before any write when the registry will not delete (design: no throwaway left behind). A service whose
    V2 DELETE is refused altogether (Docker Hub, GHCR) is checked through its own API instead."""
    if api is not None and not api.v2_digest_deletes:
        api.check(repository)
        return
    try:
        response = client.request("DELETE", f"/v2/{repository}/manifests/{PROBE_DIGEST}",
                                  scopes=client.delete_scope(repository),
                                  operation=f"checking that {client.location.host} accepts deletes",
                                  ok=(200, 202, 204, 404), accept_status=(400, 405))
    except RegistryError as exc:
        if exc.status in (401, 403):
            raise RegistryError(f"{exc.message}; deleting needs the 'delete' permission on {repository}",
                                operation=exc.operation, method=exc.method, url=exc.url, status=exc.status,
                                errors=exc.errors) from None
        raise
    response.close()
    if response.status_code == 405:
        raise DeletesDisabled(
            f"the registry {client.location.host} has deletes disabled or is read-only (HTTP 405); nothing was deleted",
            operation=f"deleting from {repository}", method="DELETE", status=405)


class TagDeleter:
    """Deletes single tags safely, remembering per client whether the native tag DELETE works."""

    def __init__(self, client, repository: str, plan: DeletePlan, api=None) -> None:
        self.client = client
        self.repository = repository
        self.plan = plan
        self._native = client.native_tag_delete
        self._lock = threading.Lock()
        # The service's tag API, where it has one this run can use: instead of the throwaway path (after the OCI
        # tag DELETE where the service may have it, as Quay), or straight away (Docker Hub, Harbor, ACR).
        self.api = api if api is not None and api.has_credential else None
        self._unused_api = api if api is not None and self.api is None else None

    def delete_all(self, pool, tags: list[str]) -> list[dict]:
        """Every tag deleted (or refused in the plan when it moved since planning); the deletes made."""
        return [d for d in self._delete_all(pool, tags) if d]

    def _moved(self, tag: str) -> bool:
        """Before a native tag DELETE (which takes whatever the tag names): refuse a tag that moved."""
        head = self.client.head_manifest(self.repository, tag)
        digest = head.digest if head else None
        if digest is not None and digest != self.plan.tag_digests[tag]:
            with self._lock:
                self.plan.refuse_tag(tag, digest)
            return True
        return False

    def _delete_all(self, pool, tags: list[str]) -> list[dict]:
        """Native deletes where the registry has them; otherwise throwaway markers, all written before any is deleted.

        distribution 2.8 scans every tag link of the repository when it deletes a manifest, and fails (500, leaving
        tags behind) if a link is rewritten meanwhile; so no marker is written while a DELETE runs.
        """
        if self.api is not None and not self.api.v2_tag_delete_first:
            return list(pool.map(self._api_delete, tags))
        done: list[dict] = []
        pending = list(tags)
        while pending and self._native is not False:  # learn support on one tag, then go wide
            first = pending.pop(0)
            result = self._native_delete(first, self.plan.tag_digests[first], self._siblings(first))
            if result is None:
                pending.insert(0, first)
                break
            done.append(result)
            if self._native:
                done.extend(pool.map(lambda t: self._native_delete(t, self.plan.tag_digests[t], self._siblings(t)), pending))
                return done
        if pending and self.api is not None:
            return done + list(pool.map(self._api_delete, pending))
        if pending and self._unused_api is not None:
            self.client.warn(f"{self._unused_api.missing_credential()}: tags are deleted through V2 (throwaway "
                             "manifests) instead")
        marked = [m for m in pool.map(self._mark, pending) if m is not None]
        markers = [m for m in marked if not isinstance(m, Exception)]
        if len(markers) < len(marked):  # a tag could not be marked: put back those that were, delete nothing
            self._restore(markers)
            raise next(m for m in marked if isinstance(m, Exception))
        outcomes = list(pool.map(self._drop_marker, markers))
        failed = [(marker, exc) for marker, exc in zip(markers, outcomes) if isinstance(exc, Exception)]
        self._restore([marker for marker, _exc in failed])
        if failed:
            raise failed[0][1]
        return done + [{"type": "tag", "name": m["tag"], "digest": m["digest"], "method": "throwaway",
                        "shared_tags": self._siblings(m["tag"])} for m in markers]

    def _siblings(self, tag: str) -> list[str]:
        return [t for t in self.plan.tags_on(self.plan.tag_digests[tag]) if t != tag]

    def _remember(self, native: bool) -> None:
        with self._lock:
            self._native = native
            self.client.native_tag_delete = native

    def _native_delete(self, tag: str, digest: str, siblings: list[str]) -> dict | None:
        """The deleted tag; None where the registry has no tag DELETE; {} when the tag moved (refused)."""
        if self._moved(tag):
            return {}
        manifest = self.client.get_manifest(self.repository, digest) if siblings else None
        response = self.client.delete_tag_native(self.repository, tag)
        if response.status_code in (400, 405):
            self._remember(False)
            return None
        if response.status_code == 404:
            return {"type": "tag", "name": tag, "digest": digest, "method": "absent", "shared_tags": siblings}
        self._remember(True)
        vanished = [s for s in siblings if self.client.head_manifest(self.repository, s) is None]
        if vanished:
            # Seen on early zot: a tag DELETE removed the whole manifest. Put the siblings back.
            for sibling in vanished:
                self.client.put_manifest(self.repository, sibling, manifest.raw, manifest.media_type)
            self._remember(False)
            self.client.warn(f"the registry deleted more than the tag {tag} (also {', '.join(vanished)}); "
                             "those tags were restored and native tag deletes are off for this run")
        return {"type": "tag", "name": tag, "digest": digest, "method": "native", "shared_tags": siblings}

    def _api_delete(self, tag: str) -> dict:
        """One tag through the service's API, after the check that it still names the planned digest ({} if not)."""
        if self._moved(tag):
            return {}
        digest = self.plan.tag_digests[tag]
        gone = self.api.delete_tag(self.repository, tag, digest)
        return {"type": "tag", "name": tag, "digest": digest, "method": "api" if gone else "absent",
                "shared_tags": self._siblings(tag), "api": self.api.name}

    def _restore(self, markers: list[dict]) -> None:
        """Never leave a tag on a throwaway: point each back at the image it named."""
        for marker in markers:
            self.client.put_manifest(self.repository, marker["tag"], marker["raw"], marker["media_type"])

    def _mark(self, tag: str):
        """Point the tag at a unique copy of its manifest (one extra annotation: no new blob); the error if not;
        None (and the tag refused) when the tag moved since planning: it keeps its new digest."""
        try:
            manifest = self.client.get_manifest(self.repository, tag)
            if manifest.digest != self.plan.tag_digests[tag]:
                with self._lock:
                    self.plan.refuse_tag(tag, manifest.digest)
                return None
            marker = self.client.put_manifest(self.repository, tag, throwaway_bytes(manifest.raw), manifest.media_type)
        except RegistryError as exc:
            return exc
        return {"tag": tag, "digest": manifest.digest, "marker": marker, "raw": manifest.raw,
                "media_type": manifest.media_type}

    def _drop_marker(self, marker: dict):
        try:
            self.client.delete_manifest(self.repository, marker["marker"])
        except RegistryError as exc:
            return exc
        return None


def throwaway_bytes(raw: bytes) -> bytes:
    """The same manifest with a unique annotation: a new digest whose blobs all exist already."""
    data = json.loads(raw)
    annotations = dict(data.get("annotations") or {})
    annotations[THROWAWAY_ANNOTATION] = uuid.uuid4().hex
    data["annotations"] = annotations
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def apply_delete(client, repository: str, plan: DeletePlan, concurrency: int = 8, probed: bool = False,
                 api=None) -> list[dict]:
    """Carry out a plan: tags first (their digests survive), then (after the race guard) digests, then blobs; then
    check the tags. ``api``: the service's own delete API (``_service_delete``), None for plain V2."""
    if not plan.changes:
        return []
    if not probed:
        probe_deletes(client, repository, api)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        if api is not None and api.name == "ghcr":
            deleted = delete_versions(client, repository, plan, api, pool, concurrency)
        else:
            deleted = delete_tags_then_digests(client, repository, plan, api, pool, concurrency)
    if (plan.tags or plan.digests) and (api is None or api.v2_digest_deletes):
        repair_dangling(client, repository, plan)
    for entry in deleted:
        entry.setdefault("api", "v2")
    return deleted


def warn_refused(client, repository: str, refused: list[dict]) -> None:
    if refused:
        client.warn(f"not deleted in {repository}, because the registry changed since the list of deletes was "
                    f"made: {'; '.join(map(refusal_summary, refused))} (see refused)")


def delete_tags_then_digests(client, repository: str, plan: DeletePlan, api, pool, concurrency: int) -> list[dict]:
    deleted: list[dict] = []
    deleter = TagDeleter(client, repository, plan, api)
    deleted.extend(deleter.delete_all(pool, list(plan.tags)))
    warn_refused(client, repository, recheck_before_digest_deletes(client, repository, plan, concurrency))

    def delete_digest(digest: str) -> dict:
        if api is not None and not api.v2_digest_deletes:
            return delete_digest_by_its_tags(client, repository, plan, api, digest)
        gone = delete_manifest_untagging_first(client, repository, plan, digest)
        return {"type": "digest", "name": digest, "digest": digest, "removed_tags": plan.tags_on(digest),
                "method": "digest" if gone else "absent"}

    # Tagged manifests first, then untagged ones (index children, referrers): an interrupted run never leaves
    # a tag on an index whose children are gone.
    tagged = [d for d in plan.digests if plan.tags_on(d)]
    deleted.extend(pool.map(delete_digest, tagged))
    deleted.extend(pool.map(delete_digest, [d for d in plan.digests if d not in tagged]))

    def delete_blob(digest: str) -> dict:
        gone = client.delete_blob(repository, digest)
        return {"type": "blob", "name": digest, "digest": digest, "method": "blob" if gone else "absent"}

    deleted.extend(pool.map(delete_blob, plan.blobs))
    return deleted


def delete_manifest_untagging_first(client, repository: str, plan: DeletePlan, digest: str) -> bool:
    """A digest DELETE. Artifact Registry / GCR refuse one while a tag points at the manifest (400
    GOOGLE_MANIFEST_DANGLING_TAG) and delete tags alone with the OCI tag DELETE: there the digest's tags go first,
    each checked just before to still name this digest, then the digest."""
    try:
        return client.delete_manifest(repository, digest)
    except RegistryError as exc:
        if not exc.has_code("GOOGLE_MANIFEST_DANGLING_TAG"):
            raise
    for tag in plan.tags_on(digest):
        head = client.head_manifest(repository, tag)
        if head is not None and head.digest == digest:
            client.delete_tag_native(repository, tag)
    return client.delete_manifest(repository, digest)


def delete_digest_by_its_tags(client, repository: str, plan: DeletePlan, api, digest: str) -> dict:
    """Docker Hub has no digest delete: every tag on the digest is deleted through its tag API, each checked just
    before to still name this digest (a tag moved elsewhere meanwhile stays where it is)."""
    removed = []
    for tag in plan.tags_on(digest):
        head = client.head_manifest(repository, tag)
        if head is not None and head.digest == digest and api.delete_tag(repository, tag, digest):
            removed.append(tag)
    return {"type": "digest", "name": digest, "digest": digest, "removed_tags": removed,
            "method": "tags" if removed else "absent", "api": api.name}


# ---------------------------------------------------------------------- services with their own rules


def fit_to_api(client, repository: str, plan: DeletePlan, api, concurrency: int = 8) -> None:
    """Take out of the plan (into ``refused``, with the reason) what the service cannot delete; reads only, so
    check mode reports the same."""
    if api is None:
        return
    if not api.v2_digest_deletes:
        for blob in list(plan.blobs):
            plan.refuse("blob", blob, blob, f"{api.label} has no API to delete a blob: it stays")
    if api.name == "dockerhub":
        for digest in [d for d in plan.digests if not plan.tags_on(d)]:
            plan.refuse("digest", digest, digest, "Docker Hub deletes tags only: an untagged manifest cannot be "
                                                  "deleted through its API, so it stays")
    elif api.name == "ghcr":
        fit_to_versions(client, repository, plan, api, concurrency)


def tag_groups(plan: DeletePlan) -> dict[str, list[str]]:
    """The tags to delete alone, by digest."""
    groups: dict[str, list[str]] = {}
    for tag in plan.tags:
        groups.setdefault(plan.tag_digests[tag], []).append(tag)
    return groups


def fit_to_versions(client, repository: str, plan: DeletePlan, api, concurrency: int = 8) -> None:
    """GHCR deletes whole versions (a manifest with every tag on it). A tag goes only with every other tag on its
    version; a version goes only when no kept index references it (the children of a multi-arch image are untagged
    versions: deleting them breaks the image, a known trap)."""
    for digest, tags in tag_groups(plan).items():
        staying = [t for t in plan.tags_on(digest) if t not in tags]
        for tag in tags if staying else ():
            plan.refuse("tag", tag, digest, f"GHCR deletes a whole version (the manifest and every tag on it) and "
                                            f"{', '.join(staying)} on it must stay: not deleted", staying_tags=staying)
    doomed = set(plan.digests) | set(tag_groups(plan))
    if not doomed:
        return
    versions = api.versions(repository)
    kept = list(dict.fromkeys([v["name"] for v in versions if v["name"] not in doomed]
                              + [d for d in plan.after().values() if d not in doomed]))
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        manifests = [m for m in pool.map(lambda d: client.get_manifest(repository, d, missing_ok=True), kept) if m]
    parents: dict[str, str] = {}
    for manifest in manifests:
        for child in manifest.data.get("manifests") or []:
            if isinstance(child, dict) and isinstance(child.get("digest"), str):
                parents.setdefault(child["digest"], manifest.digest)
    held = []
    for digest in sorted(doomed & set(parents)):
        reason = f"part of the kept index {parents[digest]}: deleting its GHCR version would break that image"
        if digest in plan.digests:
            plan.refuse("digest", digest, digest, reason, of=parents[digest])
            held.append(digest)
        for tag in tag_groups(plan).get(digest, []):
            plan.refuse("tag", tag, digest, reason, of=parents[digest])
    if held:
        hold_back_dependents(client, repository, plan, held)


def delete_versions(client, repository: str, plan: DeletePlan, api, pool, concurrency: int) -> list[dict]:
    """GHCR: each doomed manifest is one version DELETE, made only when the tags GitHub shows on it now are all
    meant to go (the race guard, on top of the V2 one); tagged versions first, then untagged ones."""
    groups = tag_groups(plan)
    lock = threading.Lock()
    warn_refused(client, repository, recheck_before_digest_deletes(client, repository, plan, concurrency))
    versions = {v["name"]: v for v in api.versions(repository)}

    def going(digest: str) -> set[str]:
        return set(groups.get(digest, [])) | (set(plan.tags_on(digest)) if digest in plan.digests else set())

    def delete(digest: str) -> list[dict]:
        version = versions.get(digest)
        extra = sorted(set(version["tags"]) - going(digest)) if version else []
        moved = [t for t in groups.get(digest, []) if version and t not in version["tags"]]
        if moved:  # a tag to delete is no longer on this version: deleting it would not delete the tag
            with lock:
                for tag in groups[digest]:
                    plan.refuse("tag", tag, digest, f"{', '.join(moved)} moved off this GHCR version since the list "
                                                    "of deletes was made: not deleted", moved_tags=moved)
            return []
        if extra:
            with lock:
                if digest in plan.digests:
                    plan.refuse_digest(digest, extra)
                for tag in groups.get(digest, []):
                    plan.refuse("tag", tag, digest, f"{', '.join(extra)} now also point at its GHCR version, which "
                                                    "would go with it: not deleted", unexpected_tags=extra)
            return []
        gone = version is not None and api.delete_version(repository, version["id"])
        method = "version" if gone else "absent"
        entries = [{"type": "tag", "name": t, "digest": digest, "method": method, "api": api.name,
                    "shared_tags": [s for s in groups[digest] if s != t]} for t in groups.get(digest, [])]
        if digest in plan.digests:
            entries.append({"type": "digest", "name": digest, "digest": digest, "removed_tags": plan.tags_on(digest),
                            "method": method, "api": api.name})
        return entries

    doomed = list(dict.fromkeys(list(groups) + plan.digests))
    tagged = [d for d in doomed if going(d)]
    deleted = [e for entries in pool.map(delete, tagged) for e in entries]
    deleted += [e for entries in pool.map(delete, [d for d in doomed if d not in tagged]) for e in entries]
    return deleted


def repair_dangling(client, repository: str, plan: DeletePlan) -> list[str]:
    """Tags still listed that the plan removed: a registry that lost a race left them pointing at nothing.

    Each is pointed at a throwaway copy of a manifest that still exists and that copy deleted, one at a time.
    """
    gone = set(plan.tag_digests) - set(plan.after())
    stuck = sorted(gone & set(client.list_tags(repository))) if gone else []
    if not stuck:
        return []
    present = next((m for m in (client.get_manifest(repository, d) if client.head_manifest(repository, d) else None
                                for d in dict.fromkeys(plan.after().values())) if m is not None), None)
    if present is None:
        raise RegistryError(f"the tags {', '.join(stuck)} are still listed but point at deleted manifests, and no "
                            "manifest is left in the repository to clear them with", operation=f"deleting in {repository}")
    for tag in stuck:
        marker = client.put_manifest(repository, tag, throwaway_bytes(present.raw), present.media_type)
        client.delete_manifest(repository, marker)
    client.warn(f"the registry left {', '.join(stuck)} behind (tag links pointing at deleted manifests); cleared them")
    return stuck


def predicted(plan: DeletePlan, api=None) -> list[dict]:
    """What ``apply_delete`` would report, for check mode (``api``: which API would do the deletes)."""
    tag_api = api.name if api is not None and (api.has_credential or not api.v2_digest_deletes) else "v2"
    digest_api = "v2" if api is None or api.v2_digest_deletes else api.name
    out = [{"type": "tag", "name": t, "digest": plan.tag_digests[t], "api": tag_api,
            "shared_tags": [s for s in plan.tags_on(plan.tag_digests[t]) if s != t]} for t in plan.tags]
    out += [{"type": "digest", "name": d, "digest": d, "removed_tags": plan.tags_on(d), "api": digest_api}
            for d in plan.digests]
    out += [{"type": "blob", "name": b, "digest": b, "api": "v2"} for b in plan.blobs]
    return out
