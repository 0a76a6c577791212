# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``registry_sync referrers: true``: the signatures, SBOMs and attestations of the mirrored images.

Found on the source through the OCI 1.1 referrers API, else the ``sha256-<hex>`` fallback tag (a HEAD, and a GET only
when the tag exists), referrers of referrers too (``mirror.walk_referrers``); copied by digest (a referrer has no tag)
only when the destination lacks them, after their subjects, with the copy machinery of ``copy.py``. Writing a manifest
with ``subject`` keeps the destination's own fallback tag up to date where it has no referrers API
(``RegistryClient.put_manifest(list_referrer=True)``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.regops.registry.plugins.module_utils.client import referrers_tag
from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image, plan_copy
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError
from ansible_collections.regops.registry.plugins.module_utils.mirror import walk_referrers
from ansible_collections.regops.registry.plugins.module_utils.reference import OCI_INDEX


def source_referrers(client, repository: str, digest: str, reserve: int = 0) -> list[dict]:
    """Descriptors of the referrers of ``digest``: the referrers API where the registry has one, else its fallback
    tag, read with HEAD and then with GET only when it exists and is an index other than the subject (GitLab
    resolves ``sha256-<hex>`` to the subject itself)."""
    listed = client.list_referrers(repository, digest)
    if listed is not None:
        return listed
    tag = referrers_tag(digest)
    head = client.head_manifest(repository, tag)
    if head is None:
        return []
    if head.digest == digest or head.media_type != OCI_INDEX:
        client.warn(f"{client.location.host} resolves the referrers fallback tag {repository}:{tag} to "
                    f"{'the subject itself' if head.digest == digest else head.media_type or 'a manifest'}, not to "
                    "an index of referrers: referrers listed only there are not mirrored")
        return []
    client.require_pulls(1, reserve, operation=f"reading the referrers fallback tag {repository}:{tag}")
    index = client.get_manifest(repository, tag, missing_ok=True)
    if index is None or index.digest == digest or index.media_type != OCI_INDEX:
        return []
    return [m for m in index.data.get("manifests") or [] if isinstance(m, dict) and isinstance(m.get("digest"), str)]


def find_referrers(client, repository: str, roots: list[str], workers: int, reserve: int = 0) -> dict[str, list]:
    """Root digest -> its referrers on the source, referrers of referrers included, each after its subject."""
    roots = list(dict.fromkeys(roots))
    first: dict[str, list] = {}
    if roots and client.referrers_api is None:
        # The first answer tells whether the registry has the API: without it, one 404 in all, not one per digest.
        first[roots[0]] = source_referrers(client, repository, roots[0], reserve)

    def listing(digest: str) -> list[dict]:
        return first.pop(digest) if digest in first else source_referrers(client, repository, digest, reserve)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return walk_referrers(roots, listing, pool.map)


def missing_referrers(client, repository: str, found: dict[str, list], workers: int) -> dict[str, list]:
    """``found`` without the referrers the destination already has (HEAD by digest)."""
    digests = list(dict.fromkeys(d["digest"] for listed in found.values() for d in listed))
    if not digests:
        return {root: [] for root in found}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(digests)))) as pool:
        there = dict(zip(digests, pool.map(lambda d: client.head_manifest(repository, d) is not None, digests)))
    return {root: [d for d in listed if not there[d["digest"]]] for root, listed in found.items()}


def copy_referrers(source_client, source_repository: str, client, repository: str, referrers: list[dict], *,
                   concurrency: int = 8, reserve: int = 0) -> list[str]:
    """Copy one image's referrers by digest, in order (each after its subject), one at a time: where the destination
    has no referrers API every write rewrites its subject's fallback tag, and two writers at once would lose one.
    Returns the digests written; one that a stale fallback index lists but the source no longer has is skipped."""
    written = []
    for referrer in referrers:
        digest = referrer["digest"]
        try:
            plan = plan_copy(source_client, source_repository, digest, concurrency, reserve)
        except RegistryError as exc:
            if exc.status != 404:
                raise
            source_client.warn(f"the referrer {source_repository}@{digest} of {referrer['subject']} is listed but "
                               "does not exist on the source: not mirrored")
            continue
        done = copy_image(source_client, source_repository, digest, client, repository, digest,
                          concurrency=concurrency, plan=plan, reserve=reserve)
        if done["changed"]:
            written.append(digest)
    return written
