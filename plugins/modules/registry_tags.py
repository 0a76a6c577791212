#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_tags
short_description: List the tags of a repository, optionally with the facts of every image
version_added: 0.1.0
description:
  - Lists the tags of one repository (following C(Link) pagination), filters and sorts them client-side
    (registries return them in no reliable order).
  - With O(details), resolves every tag in the same call, concurrently on one pooled session
    (C(HEAD) per tag, then one manifest and one config read per distinct digest) and returns the image facts.
  - Handles Docker schema 2 images and manifest lists, OCI image manifests and indexes (per-platform facts,
    attestation manifests left out), non-image artifacts, and legacy Docker schema 1 images (signed or not; facts
    from their C(v1Compatibility) history).
  - On Docker Hub a one-component O(repository) (C(nginx)) is an official image, C(library/nginx), as Docker names it;
    results name it so.
author:
  - regops.registry contributors (@regops)
options:
  repository:
    description: The repository, for example C(team/app). Either this or O(repositories).
    type: str
  repositories:
    description:
      - Several repositories in one call, resolved concurrently (two at a time, each with O(concurrency) requests);
        the result is then RV(repositories), one entry per repository, instead of RV(tags) and RV(images).
    type: list
    elements: str
  filter:
    description: A Python regular expression; only tags it matches (C(re.search)) are returned.
    type: str
  sort:
    description:
      - Order of the result. C(none) keeps the registry's order; C(lexical) sorts by name; C(semver) orders semantic
        versions (an optional leading C(v)), with other tags before them; C(created) orders by image creation date,
        oldest first, images without a date first (this resolves every tag, as O(details) does).
    type: str
    choices: [none, lexical, semver, created]
    default: lexical
  reverse:
    description: Reverse the order (newest or highest first).
    type: bool
    default: false
  details:
    description: Also return the facts of every tag in RV(images).
    type: bool
    default: false
  referrers:
    description:
      - With O(details), also list each image's OCI 1.1 referrers (signatures, SBOMs, attestations, and theirs in turn)
        in RV(images[].referrers), through the referrers API (C(GET /v2/<name>/referrers/<digest>)).
      - On a registry without that API the first request says so (404) and no more are sent; referrers there are
        found through their C(sha256-<hex>) fallback tags instead.
    type: bool
    default: false
  blobs:
    description:
      - With O(details), also return the size of every blob each image references (its config and layers; for an
        index, those of every platform manifest and attestation manifest, read for this) in RV(images[].blobs).
      - Enough to count storage exactly as the registry keeps it (each blob once however many images, tags and
        repositories reference it), as the C(regops.registry.usage_report) playbook does.
    type: bool
    default: false
    version_added: 0.2.0
  retention:
    description:
      - A retention policy to plan with, where the facts are (this implies O(details)). Its terms are those of the
        C(regops.registry.retention_plan) filter, C(keep_latest), C(group_by), C(keep_tags), C(match_tags),
        C(older_than), C(order) and C(now). A wrong term fails the task before any request.
      - The result then carries the plans instead of the facts, so 100,000 facts dicts never go through the
        controller's variables. Each RV(repositories) entry has C(repository) and C(count) only, and RV(plans),
        RV(deletes), RV(summary) and RV(emptied) are added.
      - This is how the prune role plans; the plan is the one the C(regops.registry.retention_plan) filter makes
        from the same facts.
    type: dict
    version_added: 0.2.0
  concurrency:
    description: How many requests run at once when resolving tags.
    type: int
    default: 8
  page_size:
    description: Tags requested per page from registries that paginate (at most 10000).
    type: int
  min_ratelimit_remaining:
    description:
      - Where the registry announces a pull rate limit (Docker Hub's C(ratelimit-remaining) header, see RV(ratelimit)),
        the pulls to leave unused. Tags are resolved with C(HEAD), which is free; before the manifest GETs of
        O(details) (one pull per distinct digest, and per platform of an index) the module fails, sending none of
        them, when they exceed the last announced remainder less this number.
    type: int
    default: 0
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.attributes
  - regops.registry.attributes.CHECK_MODE_READ_ONLY
"""

EXAMPLES = r"""
- name: Release tags, highest version first
  regops.registry.registry_tags:
    registry: registry.example.com
    repository: team/app
    filter: '^v?\d+\.\d+\.\d+$'
    sort: semver
    reverse: true
  register: releases

- name: Every tag with digest, creation date, size, platforms and labels
  regops.registry.registry_tags:
    registry: registry.example.com
    repository: team/app
    details: true
    sort: created
  register: report

- name: The facts of every tag of several repositories, in one call
  regops.registry.registry_tags:
    registry: registry.example.com
    repositories: [team/app, team/worker]
    details: true
  register: facts
"""

RETURN = r"""
tags:
  description: Tag names, filtered and sorted.
  returned: when O(repository) is given without O(retention)
  type: list
  elements: str
  sample: [1.0.0, 1.1.0, latest]
count:
  description: Number of tags returned.
  returned: when O(repository) is given without O(retention)
  type: int
  sample: 3
repositories:
  description: With O(repositories), one entry per repository, in the order given, each with C(repository), C(tags),
    C(count) and (with O(details=true)) C(images) as described for RV(tags), RV(count) and RV(images); with
    O(retention), C(repository) and C(count) only (the plans are in RV(plans)).
  returned: when O(repositories) or O(retention) is given
  type: list
  elements: dict
  sample: [{repository: team/app, tags: [1.0.0, latest], count: 2}]
images:
  description: One entry per tag (same order as RV(tags)) when O(details=true).
  returned: when O(details=true) and O(repository) are given without O(retention)
  type: list
  elements: dict
  contains:
    tag:
      description: The tag.
      type: str
    digest:
      description: Digest of the manifest or index the tag points at.
      type: str
    media_type:
      description: Media type of that manifest or index.
      type: str
    created:
      description: Creation date (ISO 8601, UTC) or null when the image does not say.
      type: str
    created_source:
      description: Where RV(images[].created) came from (C(config), C(annotation), C(label), C(history), C(unknown)).
      type: str
    size:
      description: Bytes stored in the registry (config plus unique layers; for an index, over all platforms).
      type: int
    platforms:
      description: Platforms (C(os), C(architecture), C(variant)) of the image or of the index's children.
      type: list
      elements: dict
    labels:
      description: Image labels (C(config.Labels)); for an index, those of its first platform.
      type: dict
    shared_tags:
      description: The other tags of the repository that point at the same digest.
      type: list
      elements: str
    manifests:
      description: For an index, its platform manifests (C(digest), C(media_type), C(platform), C(size), C(created)).
      type: list
      elements: dict
    attestations:
      description: For an index, the digests of its attestation manifests (left out of RV(images[].platforms)).
      type: list
      elements: str
    referrers:
      description: With O(referrers=true), the digests of the image's referrers (empty where the registry has no referrers API).
      type: list
      elements: str
    blobs:
      description:
        - With O(blobs=true), digest -> size in bytes of every blob the image references (config and layers; for an
          index, those of its platform and attestation manifests), each once. Manifests themselves are not counted.
      type: dict
      returned: when O(blobs=true)
      sample: {"sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945": 1472}
    subject:
      description: For an OCI 1.1 referrer (a signature, SBOM or attestation), the digest of the manifest it is about.
      type: str
  sample:
    - tag: 1.1.0
      digest: sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
      media_type: application/vnd.oci.image.manifest.v1+json
      created: "2024-05-01T10:00:00Z"
      created_source: config
      size: 3145728
      platforms: [{os: linux, architecture: amd64}]
      labels: {org.opencontainers.image.version: 1.1.0}
      shared_tags: [latest]
plans:
  description:
    - With O(retention), the plan of every repository in the order given, as the C(regops.registry.retention_plan)
      filter returns it (C(repository), C(policy), C(tags) with every tag's decision and reasons, C(keep_tags),
      C(delete_tags), C(delete_digests), C(dependents), C(summary)).
  returned: when O(retention) is given
  type: list
  elements: dict
deletes:
  description:
    - With O(retention), what M(regops.registry.registry_delete) needs to carry the plans out, for the repositories
      with something to delete, ready for its O(regops.registry.registry_delete#module:repositories) (C(repository),
      C(tags), C(digests), C(protect_tags) and C(expected_tags), as the C(regops.registry.retention_deletes) filter
      makes them from each plan).
  returned: when O(retention) is given
  type: list
  elements: dict
summary:
  description: With O(retention), the totals over every repository.
  returned: when O(retention) is given
  type: dict
  contains:
    repositories:
      description: Repositories planned.
      type: int
    tags:
      description: Tags seen.
      type: int
    kept:
      description: Tags kept.
      type: int
    deleted:
      description: Tags to delete.
      type: int
  sample: {repositories: 2, tags: 2000, kept: 200, deleted: 1800}
emptied:
  description: With O(retention), the repositories with tags of which the plan keeps none.
  returned: when O(retention) is given
  type: list
  elements: str
  sample: []
ratelimit:
  description:
    - The pull rate limit the registry last announced (Docker Hub's C(ratelimit-limit) and C(ratelimit-remaining)
      headers on manifest requests), as it stood after this task's requests.
  returned: when the registry announces one (on Docker Hub, with O(details) or O(sort=created))
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
      description: What the limit is counted against (C(docker-ratelimit-source), an IP address or account id).
      type: str
      returned: when the registry names it
  sample: {limit: 100, remaining: 76, window: 21600}
"""

from ansible_collections.regops.registry.plugins.module_utils.common import (
    RegistryModule,
    add_ratelimit,
    for_each_repository,
)
from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
from ansible_collections.regops.registry.plugins.module_utils.options import (
    compile_regex,
    concurrency,
    min_ratelimit_remaining,
    page_size as page_size_option,
)
from ansible_collections.regops.registry.plugins.module_utils.retention import (
    deletes_of,
    emptied,
    plan_retention,
    policy_from_terms,
    totals,
)
from ansible_collections.regops.registry.plugins.module_utils.tag_sort import sort_tags


def main() -> None:
    rm = RegistryModule({
        "repository": {"type": "str"},
        "repositories": {"type": "list", "elements": "str"},
        "filter": {"type": "str"},
        "sort": {"type": "str", "choices": ["none", "lexical", "semver", "created"], "default": "lexical"},
        "reverse": {"type": "bool", "default": False},
        "details": {"type": "bool", "default": False},
        "referrers": {"type": "bool", "default": False},
        "blobs": {"type": "bool", "default": False},
        "concurrency": {"type": "int", "default": 8},
        "page_size": {"type": "int"},
        "min_ratelimit_remaining": {"type": "int", "default": 0},
        "retention": {"type": "dict"},
    }, mutually_exclusive=[("repository", "repositories")], required_one_of=[("repository", "repositories")])

    def one(repository: str, pattern, page_size: int | None, workers: int, reserve: int, policy=None) -> dict:
        p = rm.params
        tags = rm.client.list_tags(repository, page_size=page_size)
        if pattern is not None:
            tags = [t for t in tags if pattern.search(t)]
        images = None
        if p["details"] or p["sort"] == "created" or policy is not None:
            gatherer = FactsGatherer(rm.client, workers, reserve)
            images = gatherer.tag_details(repository, tags, referrers=p["referrers"], blobs=p["blobs"] and p["details"])
            tags = [i["tag"] for i in images]  # a tag deleted meanwhile drops out
        if policy is not None:  # the plan, not the facts, leaves the module
            return {"count": len(tags), "plan": plan_retention(images, policy, repository=repository)}
        created = {i["tag"]: i.get("created") for i in images} if images is not None else None
        tags = sort_tags(tags, p["sort"], created=created, reverse=p["reverse"])
        result = {"tags": tags, "count": len(tags)}
        if p["details"]:
            by_tag = {i["tag"]: i for i in images}
            result["images"] = [by_tag[t] for t in tags]
        return result

    def body() -> dict:
        p = rm.params
        names = p["repositories"] if p["repositories"] is not None else [p["repository"]]
        repositories = [rm.repository(r) for r in names]
        pattern = compile_regex(p["filter"], "filter")
        page_size = page_size_option(p["page_size"])
        workers = concurrency(p["concurrency"])
        reserve = min_ratelimit_remaining(p["min_ratelimit_remaining"])
        policy = None if p["retention"] is None else policy_from_terms(p["retention"])
        if p["repositories"] is None and policy is None:
            return add_ratelimit(dict(changed=False, **one(repositories[0], pattern, page_size, workers, reserve)),
                                 rm.client)
        results = for_each_repository(lambda r: one(r, pattern, page_size, workers, reserve, policy), repositories)
        plans = [res.pop("plan") for res in results] if policy is not None else None
        result = {"changed": False,
                  "repositories": [dict(repository=r, **res) for r, res in zip(repositories, results)]}
        if plans is not None:  # each plan once, in plans: the entries keep the counts
            result.update(plans=plans, deletes=deletes_of(plans), summary=totals(plans), emptied=emptied(plans))
        return add_ratelimit(result, rm.client)

    rm.run(body)


if __name__ == "__main__":
    main()
