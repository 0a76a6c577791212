# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image facts over the network: resolve tags with HEAD, read each distinct manifest and config once.

The pure interpretation (created, size, platforms, labels) is in ``images``; this file only decides
what to fetch, fetches it concurrently and caches it by digest (a digest's facts never change).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.regops.registry.plugins.module_utils import images
from ansible_collections.regops.registry.plugins.module_utils.errors import RegistryError

PRIVATE_KEYS = ("blob_sizes",)


def resolve_tags(client, repository: str, tags: list[str], concurrency: int = 8) -> dict[str, str | None]:
    """Tag -> digest with concurrent HEADs, in the order given (None when a listed tag vanished meanwhile)."""
    if not tags:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tags)))) as pool:
        heads = list(pool.map(lambda t: client.head_manifest(repository, t, confirm_missing=True), tags))
    return {tag: (head.digest if head else None) for tag, head in zip(tags, heads)}


def public(facts: dict) -> dict:
    """Facts without the helper keys that only the aggregation needs."""
    return {k: v for k, v in facts.items() if k not in PRIVATE_KEYS}


class FactsGatherer:
    """Gathers facts for many tags of one registry with bounded concurrency and per-digest caches."""

    def __init__(self, client, concurrency: int = 8, min_ratelimit_remaining: int = 0) -> None:
        self.client = client
        self.concurrency = max(1, concurrency)
        # Pulls of the registry's rate limit (Docker Hub) left to others: a run that needs more fails before its GETs.
        self.reserve = max(0, min_ratelimit_remaining)
        self._facts: dict[tuple[str, str], dict] = {}
        self._manifests: dict[tuple[str, str], object] = {}
        self._configs: dict[str, dict | None] = {}
        self._lock = threading.Lock()

    def _config(self, repository: str, manifest) -> dict | None:
        if not images.needs_config(manifest.data, manifest.media_type):
            return None
        descriptor = images.config_descriptor(manifest.data) or {}
        digest = descriptor.get("digest")
        if not digest:
            return None
        with self._lock:
            if digest in self._configs:
                return self._configs[digest]
        raw = self.client.get_blob_bytes(repository, digest)
        try:
            config = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise RegistryError(f"the image config {digest} is not valid JSON",
                                operation=f"reading the config of {repository}@{manifest.digest}") from None
        with self._lock:
            self._configs[digest] = config
        return config

    def manifest(self, repository: str, digest: str):
        """The manifest of a digest, read (one GET: one pull on Docker Hub) at most once per run."""
        key = (repository, digest)
        with self._lock:
            if key in self._manifests:
                return self._manifests[key]
        manifest = self.client.get_manifest(repository, digest)
        with self._lock:
            self._manifests[key] = manifest
        return manifest

    def plan_pulls(self, repository: str, digests) -> None:
        """Before the GETs of ``digests``: fail now if the registry's rate limit cannot pay for those not read yet."""
        with self._lock:
            needed = len({d for d in digests if (repository, d) not in self._manifests})
        self.client.require_pulls(needed, self.reserve, f"reading the manifests of {repository}")

    def for_digest(self, repository: str, digest: str) -> dict:
        """Facts of one manifest or index (children included), cached."""
        key = (repository, digest)
        with self._lock:
            if key in self._facts:
                return self._facts[key]
        self.plan_pulls(repository, [digest])
        facts = self._facts_of(repository, self.manifest(repository, digest))
        with self._lock:
            self._facts[key] = facts
        return facts

    def _facts_of(self, repository: str, manifest) -> dict:
        kind = images.manifest_kind(manifest.media_type)
        if kind == "index":
            children = images.index_children(manifest.data)
            digests = [c["digest"] for c in children]
            self.plan_pulls(repository, digests)
            if digests:
                with ThreadPoolExecutor(max_workers=min(self.concurrency, len(digests))) as pool:
                    child_facts = list(pool.map(lambda d: self.for_digest(repository, d), digests))
            else:
                child_facts = []
            return images.index_facts(manifest.data, manifest.media_type, manifest.digest, child_facts)
        config = self._config(repository, manifest) if kind == "image" else None
        return images.image_facts(manifest.data, manifest.media_type, manifest.digest, config, len(manifest.raw))

    def resolve(self, repository: str, tags: list[str]) -> dict[str, str | None]:
        return resolve_tags(self.client, repository, tags, self.concurrency)

    def referrers(self, repository: str, digest: str, depth: int = 3) -> list[str] | None:
        """Digests of every referrer of ``digest`` (signatures of signatures too, ``depth`` levels), or None when
        the registry has no referrers API."""
        found: list[str] = []
        level = [digest]
        for _level in range(depth):
            following = []
            for subject in level:
                descriptors = self.client.list_referrers(repository, subject)
                if descriptors is None:
                    return found or None
                following += [d["digest"] for d in descriptors if d["digest"] not in found and d["digest"] != digest]
            found += list(dict.fromkeys(following))
            level = list(dict.fromkeys(following))
            if not level:
                break
        return found

    def blobs(self, repository: str, facts: dict) -> dict[str, int]:
        """Digest -> size of every blob (config, layers) a manifest references; for an index, its children's and its
        attestation manifests' (read here, configs aside: their descriptors carry the sizes)."""
        sizes = dict(facts.get("blob_sizes") or {})
        attestations = facts.get("attestations") or []
        self.plan_pulls(repository, attestations)
        for digest in attestations:
            manifest = self.manifest(repository, digest)
            sizes.update(images.image_facts(manifest.data, manifest.media_type, digest, None)["blob_sizes"])
        return sizes

    def tag_details(self, repository: str, tags: list[str], referrers: bool = False, blobs: bool = False) -> list[dict]:
        """One facts dict per tag, in the order given, each naming the other tags on its digest.

        With ``referrers``, each also lists the digests of its OCI 1.1 referrers where the registry has the API; with
        ``blobs``, the size of every blob it references (``blobs``), for exact storage accounting.
        """
        digests = self.resolve(repository, tags)
        distinct = sorted({d for d in digests.values() if d})
        self.plan_pulls(repository, distinct)
        if distinct:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(distinct))) as pool:
                facts = dict(zip(distinct, pool.map(lambda d: self.for_digest(repository, d), distinct)))
        else:
            facts = {}
        blob_sizes = {}
        if blobs and distinct:  # attestation manifests are read here: concurrently too
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(distinct))) as pool:
                blob_sizes = dict(zip(distinct, pool.map(lambda d: self.blobs(repository, facts[d]), distinct)))
        found: dict[str, list[str] | None] = {}
        if referrers and distinct and self.client.referrers_api is not False:
            # The first answer tells whether the registry has the API: without it, one request in all.
            first = self.referrers(repository, distinct[0])
            if first is not None and len(distinct) > 1:
                with ThreadPoolExecutor(max_workers=min(self.concurrency, len(distinct) - 1)) as pool:
                    found = dict(zip(distinct[1:], pool.map(lambda d: self.referrers(repository, d), distinct[1:])))
            found[distinct[0]] = first
        by_digest: dict[str, list[str]] = {}
        for tag, digest in digests.items():
            if digest:
                by_digest.setdefault(digest, []).append(tag)
        out = []
        for tag in tags:
            digest = digests.get(tag)
            if not digest:
                continue
            entry = {"tag": tag}
            entry.update(public(facts[digest]))
            if referrers:
                entry["referrers"] = found.get(digest) or []
            if blobs:
                entry["blobs"] = blob_sizes[digest]
            entry["shared_tags"] = sorted(t for t in by_digest[digest] if t != tag)
            out.append(entry)
        return out
