#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_delete
short_description: Delete tags, manifests (by digest) or blobs from a repository
version_added: 0.1.0
description:
  - Deletes tags, manifests by digest, and blobs of one repository, concurrently, in one call.
  - Deleting a B(tag) removes that tag only. Where other tags point at the same digest, the digest and those tags
    survive. The module uses the OCI tag delete where the registry supports it; otherwise it points the tag at a
    unique throwaway manifest (the same manifest with one extra annotation, so no new blob) and deletes that digest.
  - Before anything is written, the module checks that the registry accepts deletes at all (a C(DELETE) of a digest
    that cannot exist answers 404 where deletes work, 405 where they are disabled), so a refused delete never leaves
    a throwaway manifest or a moved tag behind.
  - Deleting a B(digest) removes every tag pointing at it; the result names them.
  - Deleting manifests does not free storage; the registry's garbage collection does that.
author:
  - regops.registry contributors (@regops)
options:
  repository:
    description: The repository, for example C(team/app).
    type: str
    required: true
  tags:
    description: Tags to delete, each alone (other tags on the same digest stay).
    type: list
    elements: str
    default: []
  digests:
    description: Manifest digests to delete, with every tag pointing at them.
    type: list
    elements: str
    default: []
  blobs:
    description:
      - Blob digests to unlink from the repository. A manifest that still references the blob becomes unpullable;
        prefer deleting manifests and running the registry's garbage collection.
    type: list
    elements: str
    default: []
  protect_tags:
    description:
      - Tags that must still exist afterwards. If deleting O(digests) would remove one of them (the tag was moved
        onto such a digest after the list of deletes was made), the module fails before deleting anything.
      - The prune role passes every tag its plan keeps.
    type: list
    elements: str
    default: []
  concurrency:
    description: How many requests run at once.
    type: int
    default: 8
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.attributes
  - regops.registry.attributes.WRITES
"""

EXAMPLES = r"""
- name: Delete one tag; other tags on the same image stay
  regops.registry.registry_delete:
    registry: registry.example.com
    repository: team/app
    tags: [pr-1234]

- name: Delete an image by digest (and every tag on it)
  regops.registry.registry_delete:
    registry: registry.example.com
    repository: team/app
    digests:
      - sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
  diff: true

- name: Delete what a plan made earlier says, but never a tag the plan keeps
  regops.registry.registry_delete:
    registry: registry.example.com
    repository: team/app
    tags: "{{ plan.delete_tags }}"
    digests: "{{ plan.delete_digests }}"
    protect_tags: "{{ plan.keep_tags }}"
"""

RETURN = r"""
deleted:
  description:
    - What was deleted (in check mode, what would be).
    - C(method) tells how a tag went (C(native) OCI tag delete or C(throwaway) manifest) and C(shared_tags) names
      the other tags on the same digest, which stay; for a digest, C(removed_tags) names every tag that pointed at it.
  returned: always
  type: list
  elements: dict
  sample:
    - {type: tag, name: pr-1234, digest: "sha256:4f53...", method: throwaway}
    - {type: digest, name: "sha256:9a1b...", digest: "sha256:9a1b...", removed_tags: [old, older], method: digest}
skipped:
  description: What was not deleted, with the reason (for example C(absent) on a second run).
  returned: always
  type: list
  elements: dict
  sample: [{type: tag, name: pr-1234, reason: absent}]
"""

from ansible_collections.regops.registry.plugins.module_utils.common import RegistryModule
from ansible_collections.regops.registry.plugins.module_utils.deletion import apply_delete, plan_delete, predicted
from ansible_collections.regops.registry.plugins.module_utils.options import concurrency
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    validate_digest,
    validate_repository,
    validate_tag,
)


def main() -> None:
    rm = RegistryModule({
        "repository": {"type": "str", "required": True},
        "tags": {"type": "list", "elements": "str", "default": []},
        "digests": {"type": "list", "elements": "str", "default": []},
        "blobs": {"type": "list", "elements": "str", "default": []},
        "protect_tags": {"type": "list", "elements": "str", "default": []},
        "concurrency": {"type": "int", "default": 8},
    })

    def body() -> dict:
        p = rm.params
        repository = validate_repository(p["repository"])
        tags = [validate_tag(t) for t in p["tags"]]
        digests = [validate_digest(d) for d in p["digests"]]
        blobs = [validate_digest(b) for b in p["blobs"]]
        protect = [validate_tag(t) for t in p["protect_tags"]]
        workers = concurrency(p["concurrency"])
        client = rm.client
        plan = plan_delete(client, repository, tags=tags, digests=digests, blobs=blobs, protect=protect,
                           concurrency=workers)
        result = {
            "changed": plan.changes,
            "skipped": plan.skipped,
            "diff": {"before": {"repository": repository, "tags": dict(sorted(plan.tag_digests.items()))},
                     "after": {"repository": repository, "tags": plan.after()}},
        }
        if rm.check_mode:
            result["deleted"] = predicted(plan)
        else:
            result["deleted"] = apply_delete(client, repository, plan, concurrency=workers)
        return result

    rm.run(body)


if __name__ == "__main__":
    main()
