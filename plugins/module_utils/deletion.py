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


def plan_delete(client, repository: str, *, tags=(), digests=(), blobs=(), concurrency: int = 8) -> DeletePlan:
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

    def delete(self, tag: str) -> dict:
        digest = self.plan.tag_digests[tag]
        siblings = [t for t in self.plan.tags_on(digest) if t != tag]
        if self._native is not False:
            result = self._native_delete(tag, digest, siblings)
            if result is not None:
                return result
        return self._throwaway_delete(tag, digest, siblings)

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

    def _throwaway_delete(self, tag: str, digest: str, siblings: list[str]) -> dict:
        manifest = self.client.get_manifest(self.repository, tag)
        if manifest.digest != digest:
            digest = manifest.digest  # the tag moved since planning: delete what it points at now
        throwaway = json.loads(manifest.raw)
        annotations = dict(throwaway.get("annotations") or {})
        annotations[THROWAWAY_ANNOTATION] = uuid.uuid4().hex
        throwaway["annotations"] = annotations
        raw = json.dumps(throwaway, separators=(",", ":")).encode("utf-8")
        marker = self.client.put_manifest(self.repository, tag, raw, manifest.media_type)
        try:
            self.client.delete_manifest(self.repository, marker)
        except RegistryError:
            # Never leave the tag on the throwaway: point it back at the image it named.
            self.client.put_manifest(self.repository, tag, manifest.raw, manifest.media_type)
            raise
        return {"type": "tag", "name": tag, "digest": digest, "method": "throwaway", "shared_tags": siblings}


def apply_delete(client, repository: str, plan: DeletePlan, concurrency: int = 8) -> list[dict]:
    """Carry out a plan: tags first (their digests survive), then digests, then blobs."""
    if not plan.changes:
        return []
    probe_deletes(client, repository)
    deleted: list[dict] = []
    deleter = TagDeleter(client, repository, plan)
    workers = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        deleted.extend(pool.map(deleter.delete, plan.tags))

        def delete_digest(digest: str) -> dict:
            gone = client.delete_manifest(repository, digest)
            return {"type": "digest", "name": digest, "digest": digest, "removed_tags": plan.tags_on(digest),
                    "method": "digest" if gone else "absent"}

        deleted.extend(pool.map(delete_digest, plan.digests))

        def delete_blob(digest: str) -> dict:
            gone = client.delete_blob(repository, digest)
            return {"type": "blob", "name": digest, "digest": digest, "method": "blob" if gone else "absent"}

        deleted.extend(pool.map(delete_blob, plan.blobs))
    return deleted


def predicted(plan: DeletePlan) -> list[dict]:
    """What ``apply_delete`` would report, for check mode."""
    out = [{"type": "tag", "name": t, "digest": plan.tag_digests[t],
            "shared_tags": [s for s in plan.tags_on(plan.tag_digests[t]) if s != t]} for t in plan.tags]
    out += [{"type": "digest", "name": d, "digest": d, "removed_tags": plan.tags_on(d)} for d in plan.digests]
    out += [{"type": "blob", "name": b, "digest": b} for b in plan.blobs]
    return out
