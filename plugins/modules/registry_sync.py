#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_sync
short_description: Mirror images from a source registry (or repository) into this one, copying only what is missing or moved
version_added: 0.2.0
description:
  - For each entry of O(images), selects tags of the source repository (O(images[].tags), O(images[].exclude),
    O(images[].semver), O(images[].latest)) and makes the same tags of the destination repository point at the same
    digests, byte for byte (multi-platform indexes are copied whole, children first).
  - The source is read with C(HEAD) (tag to digest); a manifest is read with C(GET) only for a tag that must be copied
    (on Docker Hub a GET counts as a pull, a HEAD does not), so a rerun with nothing new sends no manifest GET to the
    source and no write to the destination. Blobs the destination has are not sent again; within one registry they are
    mounted.
  - Every tag of an entry is handled in this one call, O(concurrency) requests at a time.
  - Check mode and diff report the plan and write nothing.
  - With O(referrers=true), the signatures, SBOMs and attestations of the mirrored images come along, by digest.
author:
  - regops.registry contributors (@regops)
options:
  images:
    description: What to mirror, one entry per source repository. Several entries may write to one target.
    type: list
    elements: dict
    required: true
    suboptions:
      repository:
        description: The source repository, for example C(library/nginx).
        type: str
        required: true
      target:
        description: The destination repository in O(registry). Defaults to O(images[].repository).
        type: str
      tags:
        description: Regular expressions (searched, so anchor them with C(^) and C($)); a tag matching any of them is
          selected. Default every tag.
        type: list
        elements: str
      exclude:
        description: Regular expressions; a tag matching any of them is excluded.
        type: list
        elements: str
      semver:
        description:
          - A semantic version range, such as C(>=1.2 <2). Comparators (C(>=), C(>), C(<=), C(<), C(=) or none for
            equality) separated by spaces must all hold; C(||) separates alternatives. Versions may have a leading
            C(v) and leave out the patch (C(1.2) is C(1.2.0)).
          - A pre-release (C(1.5.0-rc.1)) is selected only by an alternative that names a pre-release of the same
            version (C(>=1.5.0-rc.0)), as semver ranges do. Tags that are not versions are excluded.
        type: str
      latest:
        description:
          - Keep only the N highest semver versions among the selected tags; when none of them is a semver version,
            the N newest by image C(created) (that reads each candidate's manifest and config, the only case where
            tags that are not copied are read with GET).
        type: int
  overwrite:
    description: When a destination tag points at another digest than the source's, move it (V(true)) or leave it
      untouched (V(false), reported in RV(images[].unchanged)).
    type: bool
    default: true
  delete_extra:
    description:
      - Delete destination tags that the name filters (O(images[].tags), O(images[].exclude), O(images[].semver)) select
        but the source no longer has, with the safe tag delete (only that tag goes; a tag that changed meanwhile is
        left alone). Tags another entry copies to the same target are kept.
    type: bool
    default: false
  referrers:
    description:
      - Copy signatures, SBOMs and attestations along (OCI 1.1 referrers, manifests whose C(subject) is the image), for
        every mirrored image, copied or unchanged, so that a signature added upstream after the image was mirrored
        arrives on the next run. Referrers of referrers (a signature of an SBOM) come too.
      - On the source they are listed with the referrers API (one C(GET /v2/<name>/referrers/<digest>) per mirrored
        digest and per referrer found); where the source has none (a 404 on the first digest, then not asked again),
        with the fallback tag C(sha256-<hex>) of each digest, read with C(HEAD), and with C(GET) only when it exists
        (that C(GET) counts as a pull on Docker Hub). The images themselves are still read with C(HEAD) only.
      - Each referrer the destination lacks (one C(HEAD) by digest there) is copied by digest, after its subject and
        byte for byte; where the destination has no referrers API it is listed in the destination's own fallback tag.
        Each registry keeps its own fallback tags, so with V(true) the source's C(sha256-<hex>) tags are not mirrored
        as tags (they are RV(images[].excluded)) and O(delete_extra) never deletes the destination's.
      - For a multi-platform index, the referrers of the index digest (what C(cosign sign) and C(notation sign) sign
        by default); those of its platform manifests are not looked for, which would take a C(GET) of every index on
        every run.
    type: bool
    default: false
  source_registry:
    description: The source registry, host[:port] or URL. Defaults to O(registry) (mirror between repositories).
    type: str
  concurrency:
    description: How many tags are copied at once (each also runs this many blob transfers), and HEADs in flight.
    type: int
    default: 8
  min_ratelimit_remaining:
    description:
      - Where the source announces a pull rate limit (Docker Hub), the pulls to leave unused. Before its first manifest
        GET the module fails, having written nothing, when the pulls the copies need exceed the last announced
        remainder less this number.
    type: int
    default: 0
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.connection.SOURCE
  - regops.registry.attributes
  - regops.registry.attributes.WRITES
"""

EXAMPLES = r"""
- name: Mirror the releases of team/app from staging (1.x only, no release candidates), signatures and SBOMs too
  regops.registry.registry_sync:
    registry: registry.example.com
    source_registry: staging.example.com
    images:
      - repository: team/app
        target: mirror/team-app
        semver: ">=1.0 <2"
    referrers: true
  register: mirrored

- name: Mirror every tag of team/app from staging, except builds, and drop the tags staging removed
  regops.registry.registry_sync:
    registry: registry.example.com
    source_registry: staging.example.com
    images:
      - repository: team/app
        target: mirror/app
        exclude: ["^build-"]
    delete_extra: true
"""

RETURN = r"""
images:
  description: One entry per O(images) entry, in order. Every list item has C(tag), C(digest) (the source digest; null
    for a tag excluded before it was read) and C(reason).
  returned: success
  type: list
  elements: dict
  contains:
    repository:
      description: The source repository.
      type: str
    target:
      description: The destination repository.
      type: str
    copied:
      description:
        - Tags copied (in check mode, that would be), with C(previous_digest) (null when the tag was new).
        - With O(referrers=true) each also has C(referrers), as in RV(images[].unchanged).
      type: list
      elements: dict
    unchanged:
      description:
        - Selected tags left as they are (already the source digest, or another and O(overwrite=false); then
          C(digest) is the destination's and C(source_digest) the source's).
        - With O(referrers=true) each also has C(referrers), the referrers of its digest copied by this run (in check
          mode, that would be; empty when the destination had them all), in the order written, each with C(digest),
          C(media_type), C(artifact_type) (the manifest's C(artifactType), else its config's media type, as the source
          lists it; null when it lists none) and C(subject) (the digest it refers to, the image or another referrer).
          Two tags on one digest list the same referrers, copied once.
      type: list
      elements: dict
    deleted:
      description: Destination tags deleted (in check mode, that would be) by O(delete_extra).
      type: list
      elements: dict
    excluded:
      description: Source tags the filters left out, each with why.
      type: list
      elements: dict
  sample:
    - repository: team/app
      target: mirror/app
      copied: [{tag: "1.4.2", digest: "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
                reason: missing at the destination, previous_digest: null,
                referrers: [{digest: "sha256:0d8f1e5b6c2a33f4e8b9c1d2a7e6f5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8",
                             media_type: application/vnd.oci.image.manifest.v1+json,
                             artifact_type: application/vnd.dev.cosign.artifact.sig.v1+json,
                             subject: "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"}]}]
      unchanged: []
      deleted: []
      excluded: [{tag: build-17, digest: null, reason: "matches exclude '^build-'"}]
ratelimit:
  description: The pull rate limit the source last announced (Docker Hub), as it stood after this task's requests.
  returned: when the source announces one
  type: dict
  contains:
    limit:
      description: Pulls allowed per window.
      type: int
    remaining:
      description: Pulls left in the current window.
      type: int
    window:
      description: Length of the window in seconds (null when the registry does not say).
      type: int
    source:
      description: What the limit is counted against.
      type: str
      returned: when the registry names it
"""

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.regops.registry.plugins.module_utils.common import (
    RegistryModule,
    add_ratelimit,
    for_each_repository,
    source_connection_spec,
)
from ansible_collections.regops.registry.plugins.module_utils.mirror import (
    attach_referrers,
    check_distinct,
    compile_selection,
    filter_names,
    keep_written_referrers,
    latest_by_semver,
    mirrored_digests,
    plan_entry,
    rank_latest,
    spare_other_entries,
)
from ansible_collections.regops.registry.plugins.module_utils.options import concurrency, min_ratelimit_remaining
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry


def entries_of(rm: RegistryModule, source_location) -> list[dict]:
    """Every entry validated (regexes, ranges, names, distinct repositories) before any request."""
    destination = parse_registry(rm.params["registry"])
    out = []
    for index, entry in enumerate(rm.params["images"]):
        repository = source_location.repository(entry["repository"])
        target = destination.repository(entry["target"] or entry["repository"])
        check_distinct((source_location.host, repository), (destination.host, target))
        out.append({"repository": repository, "target": target, "selection": compile_selection(entry, index, rm.params["referrers"])})
    return out


def created_of(source_client, repository: str, digests: dict[str, str], workers: int, reserve: int) -> dict:
    """tag -> image ``created``, read from manifests and configs: only for ``latest`` over tags that are not semver."""
    from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer

    gatherer = FactsGatherer(source_client, workers, reserve)
    distinct = sorted(set(digests.values()))
    gatherer.plan_pulls(repository, distinct)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(distinct) or 1))) as pool:
        facts = dict(zip(distinct, pool.map(lambda d: gatherer.for_digest(repository, d), distinct)))
    return {tag: facts[digest].get("created") for tag, digest in digests.items()}


def main() -> None:
    rm = RegistryModule({
        "images": {"type": "list", "elements": "dict", "required": True, "options": {
            "repository": {"type": "str", "required": True},
            "target": {"type": "str"},
            "tags": {"type": "list", "elements": "str"},
            "exclude": {"type": "list", "elements": "str"},
            "semver": {"type": "str"},
            "latest": {"type": "int"},
        }},
        "overwrite": {"type": "bool", "default": True},
        "delete_extra": {"type": "bool", "default": False},
        "referrers": {"type": "bool", "default": False},
        "source_registry": {"type": "str"},
        "source_connection": source_connection_spec(),
        "concurrency": {"type": "int", "default": 8},
        "min_ratelimit_remaining": {"type": "int", "default": 0},
    })

    def body() -> dict:
        from ansible_collections.regops.registry.plugins.module_utils.deletion import map_tags
        from ansible_collections.regops.registry.plugins.module_utils.facts import resolve_tags

        p = rm.params
        workers = concurrency(p["concurrency"])
        reserve = min_ratelimit_remaining(p["min_ratelimit_remaining"])
        source_name = p["source_registry"] or (p["source_connection"] or {}).get("registry") or p["registry"]
        source_location = parse_registry(source_name)
        entries = entries_of(rm, source_location)
        own_connection = any(v is not None for v in (p["source_connection"] or {}).values())
        same = source_location.host == parse_registry(p["registry"]).host and not own_connection
        source_client = rm.client if same else rm.client_for(source_name, p["source_connection"])
        try:
            def plan(entry: dict) -> dict:
                # Both sides at once: a rerun is nothing but these HEADs, and two registries answer them in parallel.
                with ThreadPoolExecutor(max_workers=1) as side:
                    at_destination = side.submit(map_tags, rm.client, entry["target"], workers)
                    selection = entry["selection"]
                    listed = source_client.list_tags(entry["repository"])
                    named, excluded = filter_names(selection, listed)
                    digests = {t: d for t, d in resolve_tags(source_client, entry["repository"], named,
                                                             workers).items() if d is not None}
                    created = None
                    if selection.latest and not latest_by_semver(list(digests)):
                        created = created_of(source_client, entry["repository"], digests, workers, reserve)
                    ranked, unranked = rank_latest(selection, list(digests), created)
                    excluded.update(unranked)
                    destination = at_destination.result()
                planned = plan_entry({t: digests[t] for t in ranked}, excluded, digests, destination, selection,
                                     overwrite=p["overwrite"], delete_extra=p["delete_extra"], source_tags=set(listed))
                if p["referrers"]:
                    entry["referrers"] = plan_referrers(source_client, rm.client, entry, planned, workers, reserve)
                return planned

            plans = for_each_repository(plan, entries)
            spare_other_entries(plans, [e["target"] for e in entries])
            if not rm.check_mode:
                apply(rm.client, source_client, entries, plans, workers, reserve)
            result = {"changed": any(pl["copied"] or pl["deleted"] or copies_referrers(pl) for pl in plans),
                      "images": [{"repository": e["repository"], "target": e["target"], **pl}
                                 for e, pl in zip(entries, plans)],
                      "diff": [diff_of(e, pl, p["referrers"]) for e, pl in zip(entries, plans)]}
            return add_ratelimit(result, source_client)
        finally:
            if source_client is not rm.client:
                source_client.close()

    rm.run(body)


def plan_referrers(source_client, client, entry: dict, plan: dict, workers: int, reserve: int) -> dict[str, list]:
    """Subject digest -> the referrers to copy for it (the destination lacks them), each after its subject; every
    copied or unchanged item of ``plan`` lists those of its digest. Reads only: check mode plans the same."""
    from ansible_collections.regops.registry.plugins.module_utils.mirror_referrers import (
        find_referrers,
        missing_referrers,
    )

    found = find_referrers(source_client, entry["repository"], mirrored_digests(plan), workers, reserve)
    to_copy = missing_referrers(client, entry["target"], found, workers)
    attach_referrers(plan, to_copy)
    return to_copy


def copies_referrers(plan: dict) -> bool:
    return any(i.get("referrers") for key in ("copied", "unchanged") for i in plan[key])


def diff_of(entry: dict, plan: dict, referrers: bool = False) -> dict:
    """Before/after of the destination tags this entry touches (and, with ``referrers``, the referrers it adds)."""
    before = {i["tag"]: i["previous_digest"] for i in plan["copied"]}
    before.update({i["tag"]: i["digest"] for i in plan["deleted"]})
    after = {i["tag"]: i["digest"] for i in plan["copied"]}
    after.update({i["tag"]: None for i in plan["deleted"]})
    diff = {"before": {"repository": entry["target"], "tags": dict(sorted(before.items()))},
            "after": {"repository": entry["target"], "tags": dict(sorted(after.items()))}}
    if referrers:
        added = {r["digest"] for key in ("copied", "unchanged") for i in plan[key] for r in i["referrers"]}
        diff["before"]["referrers"] = []
        diff["after"]["referrers"] = sorted(added)
    return diff


def apply(client, source_client, entries: list[dict], plans: list[dict], workers: int,
          reserve: int) -> None:
    """Copy, then delete, entry by entry; every tag of an entry at once. Refused before the first GET when the
    source's rate limit cannot pay for the copies."""
    from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image, plan_copy

    groups = [tags_by_digest(pl["copied"]) for pl in plans]
    needed = sum(len(by_digest) for by_digest in groups)
    needed += sum(len(listed) for entry in entries for listed in entry.get("referrers", {}).values())
    source_client.require_pulls(needed, reserve, operation="mirroring")
    inner = max(1, workers // 2)
    for entry, pl, by_digest in zip(entries, plans, groups):
        def copy(digest: str, entry=entry, by_digest=by_digest) -> None:
            # Read once per digest; its tags one after another, since two writes of one manifest at once race in
            # the CNCF registry's storage (see uploads.InFlight). The first writes the image, the others the tag only.
            read = plan_copy(source_client, entry["repository"], digest, inner, reserve)
            for n, tag in enumerate(by_digest[digest]):
                copy_image(source_client, entry["repository"], digest, client, entry["target"], tag,
                           concurrency=inner, plan=read, reserve=reserve, image_there=n > 0)

        if by_digest:
            with ThreadPoolExecutor(max_workers=min(workers, len(by_digest))) as pool:
                list(pool.map(copy, by_digest))
        if "referrers" in entry:  # after every subject is there: a registry may refuse a referrer of a missing one
            apply_referrers(client, source_client, entry, pl, inner, reserve)
        if pl["deleted"]:
            delete_extra(client, entry["target"], pl, workers)


def tags_by_digest(items: list[dict]) -> dict[str, list[str]]:
    """The tags to copy, grouped by their source digest, in the order planned."""
    grouped: dict[str, list[str]] = {}
    for item in items:
        grouped.setdefault(item["digest"], []).append(item["tag"])
    return grouped


def apply_referrers(client, source_client, entry: dict, plan: dict, workers: int, reserve: int) -> None:
    """Copy the referrers planned, image by image at once (each image's in order); the result keeps those written."""
    from ansible_collections.regops.registry.plugins.module_utils.mirror_referrers import copy_referrers

    pending = [listed for listed in entry["referrers"].values() if listed]
    if not pending:
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(pending))) as pool:
        written = pool.map(lambda listed: copy_referrers(source_client, entry["repository"], client, entry["target"],
                                                         listed, concurrency=workers, reserve=reserve), pending)
        keep_written_referrers(plan, {digest for digests in written for digest in digests})


def delete_extra(client, repository: str, plan: dict, workers: int) -> None:
    """The safe tag delete of the extras; a tag that moved since it was read is refused, and no longer reported."""
    from ansible_collections.regops.registry.plugins.module_utils.deletion import (
        apply_delete,
        plan_delete,
        warn_refused,
    )

    expected = {i["tag"]: i["digest"] for i in plan["deleted"]}
    deletes = plan_delete(client, repository, tags=list(expected), expected=expected, concurrency=workers)
    apply_delete(client, repository, deletes, concurrency=workers)
    warn_refused(client, repository, deletes.refused)
    gone = set(deletes.tags)
    plan["deleted"] = [i for i in plan["deleted"] if i["tag"] in gone]


if __name__ == "__main__":
    main()
