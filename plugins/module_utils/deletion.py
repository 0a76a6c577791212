# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deleting tags, manifests and blobs without taking anything else with them.

A tag delete removes that tag only: the OCI tag DELETE where the registry has it, otherwise the tag
is pointed at a unique throwaway manifest (the same manifest plus an annotation, so no new blob is
needed) and that throwaway digest is deleted. Before anything is written, one probe DELETE of a digest
that cannot exist tells whether deletes work at all, so a refusal never leaves a throwaway behind.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError

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
    skipped: list[dict] = field(default_factory=list)

    def tags_on(self, digest: str) -> list[str]:
        return sorted(t for t, d in self.tag_digests.items() if d == digest)

    def after(self) -> dict[str, str]:
        """The repository's tags after the plan (for diff)."""
        gone = set(self.tags)
        for digest in self.digests:
            gone.update(self.tags_on(digest))
        return {t: d for t, d in sorted(self.tag_digests.items()) if t not in gone}

    @property
    def changes(self) -> bool:
        return bool(self.tags or self.digests or self.blobs)


def map_tags(client, repository: str, concurrency: int = 8) -> dict[str, str]:
    """Every tag of a repository with its digest, resolved with concurrent HEADs."""
    try:
        tags = client.list_tags(repository)
    except RegistryError as exc:
        if exc.status == 404:
            return {}
        raise
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        heads = list(pool.map(lambda t: client.head_manifest(repository, t, confirm_missing=True), tags))
    return {tag: head.digest for tag, head in zip(tags, heads) if head is not None}


class ProtectedTag(RegistryError):
    """The delete would take a tag that must stay (it moved onto a doomed digest since the plan was made)."""


def plan_delete(client, repository: str, *, tags=(), digests=(), blobs=(), protect=(), concurrency: int = 8) -> DeletePlan:
    """Read what the deletes would touch. ``protect`` names tags that must survive: if any would go, nothing is
    deleted (a plan made earlier, such as the prune role's, may no longer match the registry)."""
    tag_digests = map_tags(client, repository, concurrency)
    plan = DeletePlan(tag_digests=tag_digests)
    for tag in dict.fromkeys(tags):
        if tag in tag_digests:
            plan.tags.append(tag)
        else:
            plan.skipped.append({"type": "tag", "name": tag, "reason": "absent"})
    known_digests = set(tag_digests.values())
    for digest in dict.fromkeys(digests):
        if digest in known_digests or client.head_manifest(repository, digest) is not None:
            plan.digests.append(digest)
        else:
            plan.skipped.append({"type": "digest", "name": digest, "reason": "absent"})
    for digest in dict.fromkeys(blobs):
        if client.head_blob(repository, digest) is not None:
            plan.blobs.append(digest)
        else:
            plan.skipped.append({"type": "blob", "name": digest, "reason": "absent"})
    # A tag whose digest is also deleted goes with it: no separate tag delete.
    doomed = set(plan.digests)
    for tag in list(plan.tags):
        if tag_digests[tag] in doomed:
            plan.tags.remove(tag)
            plan.skipped.append({"type": "tag", "name": tag, "reason": f"removed with its digest {tag_digests[tag]}"})
    remaining = plan.after()
    lost = sorted(t for t in dict.fromkeys(protect) if t in tag_digests and t not in remaining)
    if lost:
        raise ProtectedTag(f"the deletes would also remove {', '.join(lost)}, which must stay (each now points at a "
                           "digest to delete); nothing was deleted", operation=f"planning deletes in {repository}")
    return plan


def probe_deletes(client, repository: str) -> None:
    """Fail before any write when the registry will not delete (design: no throwaway left behind)."""
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

    def __init__(self, client, repository: str, plan: DeletePlan) -> None:
        self.client = client
        self.repository = repository
        self.plan = plan
        self._native = client.native_tag_delete
        self._lock = threading.Lock()

    def delete_all(self, pool, tags: list[str]) -> list[dict]:
        """Native deletes where the registry has them; otherwise throwaway markers, all written before any is deleted.

        distribution 2.8 scans every tag link of the repository when it deletes a manifest, and fails (500, leaving
        tags behind) if a link is rewritten meanwhile; so no marker is written while a DELETE runs.
        """
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
        marked = list(pool.map(self._mark, pending))
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

    def _restore(self, markers: list[dict]) -> None:
        """Never leave a tag on a throwaway: point each back at the image it named."""
        for marker in markers:
            self.client.put_manifest(self.repository, marker["tag"], marker["raw"], marker["media_type"])

    def _mark(self, tag: str):
        """Point the tag at a unique copy of its manifest (one extra annotation: no new blob); the error if not."""
        try:
            manifest = self.client.get_manifest(self.repository, tag)
            marker = self.client.put_manifest(self.repository, tag, throwaway_bytes(manifest.raw), manifest.media_type)
        except RegistryError as exc:
            return exc
        # The digest the tag had when marked (it may have moved since planning: that is what goes now).
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


def apply_delete(client, repository: str, plan: DeletePlan, concurrency: int = 8, probed: bool = False) -> list[dict]:
    """Carry out a plan: tags first (their digests survive), then digests, then blobs; then check the tags."""
    if not plan.changes:
        return []
    if not probed:
        probe_deletes(client, repository)
    deleted: list[dict] = []
    deleter = TagDeleter(client, repository, plan)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        deleted.extend(deleter.delete_all(pool, plan.tags))

        def delete_digest(digest: str) -> dict:
            gone = client.delete_manifest(repository, digest)
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
    if plan.tags or plan.digests:
        repair_dangling(client, repository, plan)
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


def predicted(plan: DeletePlan) -> list[dict]:
    """What ``apply_delete`` would report, for check mode."""
    out = [{"type": "tag", "name": t, "digest": plan.tag_digests[t],
            "shared_tags": [s for s in plan.tags_on(plan.tag_digests[t]) if s != t]} for t in plan.tags]
    out += [{"type": "digest", "name": d, "digest": d, "removed_tags": plan.tags_on(d)} for d in plan.digests]
    out += [{"type": "blob", "name": b, "digest": b} for b in plan.blobs]
    return out
