# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copying an image (manifest or whole index) to a tag: blobs first, children before the index.

Within one repository only the manifest is written; within one registry blobs are mounted; across
registries only missing blobs are streamed. Manifests are written byte for byte, so the target digest
equals the source digest, and that is checked after writing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.reference import INDEX_MEDIA_TYPES
from ansible_collections.regops.registry.plugins.module_utils.uploads import (
    IN_FLIGHT,
    BlobResult,
    same_registry,
    transfer_blob,
)

# Non-distributable layers live outside registries (Windows base layers): never pushed.
FOREIGN_LAYER_TYPES = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})


@dataclass
class CopyPlan:
    """The source's manifests and blobs, in the order they must exist at the target."""

    manifest: object  # client.Manifest of the source reference
    children: list = field(default_factory=list)  # client.Manifest of index children
    blobs: dict[str, int | None] = field(default_factory=dict)  # digest -> size, unique


def blob_descriptors(manifest_data: dict) -> list[dict]:
    """Config and layers of an image manifest (``fsLayers`` of a schema 1 one), without foreign layers."""
    out = [{"digest": layer["blobSum"]} for layer in manifest_data.get("fsLayers") or []
           if isinstance(layer, dict) and isinstance(layer.get("blobSum"), str)]
    config = manifest_data.get("config")
    if isinstance(config, dict) and config.get("digest"):
        out.append(config)
    for layer in manifest_data.get("layers") or []:
        if isinstance(layer, dict) and layer.get("digest") and layer.get("mediaType") not in FOREIGN_LAYER_TYPES \
                and not layer.get("urls"):
            out.append(layer)
    return out


def plan_copy(client, repository: str, reference: str, concurrency: int = 8, reserve: int = 0) -> CopyPlan:
    """Read the source: its manifest, every child manifest of an index, every blob they need.

    Each GET is a pull on Docker Hub: refused before it is sent when the rate limit, less ``reserve``, cannot pay.
    """
    client.require_pulls(1, reserve, operation=f"reading {repository}:{reference}")
    manifest = client.get_manifest(repository, reference)
    plan = CopyPlan(manifest=manifest)
    pending = [manifest]
    while pending:
        current = pending.pop()
        if current.media_type in INDEX_MEDIA_TYPES:
            digests = [d["digest"] for d in current.data.get("manifests") or [] if isinstance(d, dict) and d.get("digest")]
            client.require_pulls(len(digests), reserve, operation=f"reading the manifests of {repository}@{current.digest}")
            with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
                children = list(pool.map(lambda d: client.get_manifest(repository, d), digests))
            plan.children.extend(children)
            pending.extend(children)
        else:
            for desc in blob_descriptors(current.data):
                plan.blobs.setdefault(desc["digest"], desc.get("size"))
    # Children must be written before the indexes that list them: deepest last read, first written.
    plan.children.reverse()
    return plan


def unchanged(digest: str, media_type: str) -> dict:
    """The result of a copy whose target already is the source."""
    return {"digest": digest, "media_type": media_type, "previous_digest": digest, "blobs": [], "manifests": [],
            "changed": False}


def _write_child(client, repository: str, child, check_mode: bool) -> str:
    """An index's child manifest, by digest, unless the repository has it."""
    if client.head_manifest(repository, child.digest) is not None:
        return "exists"
    if not check_mode:
        client.put_manifest(repository, child.digest, child.raw, child.media_type, list_referrer=True)
    return "written"


def copy_image(source_client, source_repository: str, source_reference: str, client, repository: str, tag: str,
               *, check_mode: bool = False, concurrency: int = 8, plan: CopyPlan | None = None,
               mount_from: tuple[str, ...] = (), reserve: int = 0, image_there: bool = False) -> dict:
    """Make ``repository:tag`` the exact image of the source. Returns what happened per blob and manifest.

    ``image_there``: an earlier copy of this call wrote the same image into ``repository`` (another tag of it), so
    its blobs and child manifests are known to be there and are not looked for again: only the tag is written.

    ``mount_from``: repositories of the target registry to mount blobs from before streaming them across registries.
    Without a ``plan``, two HEADs come first: when the target already has the source's digest nothing is read
    (no GET, so no pull counted on Docker Hub).
    """
    head = None if plan is not None else source_client.head_manifest(source_repository, source_reference,
                                                                     confirm_missing=True)
    current = client.head_manifest(repository, tag)  # after the source: what that HEAD taught the client counts
    if plan is None:
        if head is None:
            raise RegistryError(f"the source {source_repository}:{source_reference} does not exist",
                                operation=f"copying to {repository}:{tag}", status=404)
        if current is not None and current.digest == head.digest:
            return unchanged(head.digest, head.media_type)
        plan = plan_copy(source_client, source_repository, source_reference, concurrency, reserve)
    if current is not None and current.digest == plan.manifest.digest:
        return unchanged(plan.manifest.digest, plan.manifest.media_type)
    return write_copy(plan, source_client, source_repository, client, repository, tag, current,
                      check_mode=check_mode, concurrency=concurrency, mount_from=mount_from, image_there=image_there)


def write_copy(plan: CopyPlan, source_client, source_repository: str, client, repository: str, tag: str, current,
               *, check_mode: bool, concurrency: int, mount_from: tuple[str, ...], image_there: bool = False) -> dict:
    """Write a planned copy to ``repository:tag``, which has the digest of ``current`` (a HEAD, or None); with
    ``image_there`` (see ``copy_image``) only the tag."""
    source_digest = plan.manifest.digest
    result = {"digest": source_digest, "media_type": plan.manifest.media_type,
              "previous_digest": current.digest if current else None, "blobs": [], "manifests": [], "changed": True}
    same_repository = same_registry(source_client, client) and source_repository == repository
    if image_there and not same_repository:
        result["blobs"] = [BlobResult(d, size, "exists", False, source_repository).as_dict()
                           for d, size in plan.blobs.items()]
        result["manifests"] = [{"digest": c.digest, "media_type": c.media_type, "how": "exists"}
                               for c in plan.children]
    elif not same_repository:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            outcomes = pool.map(lambda item: transfer_blob(source_client, source_repository, client, repository,
                                                           item[0], item[1], check_mode=check_mode,
                                                           mount_from=tuple(mount_from)),
                                plan.blobs.items())
            result["blobs"] = [o.as_dict() for o in outcomes]
        for child in plan.children:
            how = IN_FLIGHT.alone(client, repository, child.digest,
                                  lambda child=child: _write_child(client, repository, child, check_mode))
            result["manifests"].append({"digest": child.digest, "media_type": child.media_type, "how": how})
    result["manifests"].append({"digest": source_digest, "media_type": plan.manifest.media_type, "tag": tag,
                                "how": "written"})
    if check_mode:
        return result
    written = client.put_manifest(repository, tag, plan.manifest.raw, plan.manifest.media_type, list_referrer=True)
    check = client.head_manifest(repository, tag, confirm_missing=True)
    if written != source_digest or check is None or check.digest != source_digest:
        raise RegistryError(
            f"after writing, {repository}:{tag} has digest {check.digest if check else 'none'}, "
            f"not the source digest {source_digest}", operation=f"copying to {repository}:{tag}")
    return result


@dataclass(frozen=True)
class Target:
    """One tag to copy to, with the client of its registry."""

    client: object
    repository: str
    tag: str


def copy_to_targets(source_client, source_repository: str, source_reference: str, targets: list[Target], *,
                    check_mode: bool = False, concurrency: int = 8, mount_from: tuple[str, ...] = (),
                    reserve: int = 0) -> dict:
    """Make every target the exact image of the source, resolved to its digest once, first: every target gets that
    digest even if the source tag moves meanwhile.

    The source is read (GET) once, and only when some target lacks its digest. Targets go in order; on a registry
    other than the source's, the blobs are mounted from a target of that registry that already holds the image (an
    earlier one, written or already there) before ``mount_from`` is tried and any byte is streamed.
    """
    head = source_client.head_manifest(source_repository, source_reference, confirm_missing=True)
    if head is None:
        raise RegistryError(f"the source {source_repository}:{source_reference} does not exist",
                            operation="copying to several targets", status=404)
    plan, holders, results = None, {}, []
    for target in targets:
        registry_holders = holders.setdefault(target.client.location.base_url, [])
        current = target.client.head_manifest(target.repository, target.tag)
        if current is not None and current.digest == head.digest:
            results.append(unchanged(head.digest, head.media_type))
        else:
            plan = plan or plan_copy(source_client, source_repository, head.digest, concurrency, reserve)
            # A repository that holds the image already (an earlier target wrote it, or had it: in check mode only
            # the latter count) needs only the tag.
            results.append(write_copy(plan, source_client, source_repository, target.client, target.repository,
                                      target.tag, current, check_mode=check_mode, concurrency=concurrency,
                                      mount_from=(*registry_holders, *mount_from),
                                      image_there=target.repository in registry_holders))
        written = not check_mode or not results[-1]["changed"]  # check mode wrote nothing to mount from
        if written and target.repository not in registry_holders:
            registry_holders.append(target.repository)
    return {"digest": head.digest, "media_type": head.media_type,
            "changed": any(r["changed"] for r in results), "targets": results}
