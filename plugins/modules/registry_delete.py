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
  - B(Concurrent pushes.) A caller that chose the deletes from an earlier read passes what it saw in
    O(expected_tags). When it plans, the module then lists the tags and reads (C(HEAD)) only those the caller did
    not see and those of O(tags), not again every tag (100,000 for a large prune). Just before the digest deletes
    (after the delete check and the tag deletes), it lists the tags again and reads every tag that is not going with
    a deleted digest (tags it had not seen, and the kept tags, which may have moved since the caller read them). A
    digest that now carries a tag
    the caller did not see on it is not deleted, nor what belongs to it (the children of an index, referrers whose
    subject it is); it is listed in RV(refused) with the unexpected tags, and the other deletes go on. A tag to
    delete that now points at another digest is left there and listed in RV(refused) too, with or without
    O(expected_tags).
  - Deleting manifests does not free storage; the registry's garbage collection does that.
  - B(Services that refuse V2 deletes.) Docker Hub, GHCR, Harbor, Quay and ACR have their own delete API, chosen with
    O(delete_api) (by default from the registry's host, or by asking the registry whether it is Harbor). Its
    credential is O(api_token), or the registry's credentials; it goes only to the API's own origin
    (O(delete_api_url)), never to the registry or a redirect target elsewhere. RV(deleted) names in C(api) which
    API made each delete.
  - B(Docker Hub) (U(https://docs.docker.com/reference/api/hub/latest/)) signs in with C(POST /v2/auth/token)
    (O(username) with O(api_token), a personal access token, in place of the registry O(password), which a
    username needs anyway) and deletes each tag alone. It has no digest delete, so a digest is deleted by deleting
    every tag on it, and an untagged manifest (an index child) cannot be deleted (it is listed in RV(refused)).
    Blobs cannot be deleted.
  - B(GHCR) (GitHub Packages REST API, U(https://docs.github.com/rest/packages)) deletes package versions, and one
    version is one manifest with every tag on it. A tag is deleted only together with every other tag on its
    version; a tag whose version carries a tag that stays is refused (see RV(refused)). A version that a kept
    index references (the untagged children of a multi-arch image) is never deleted. The token (O(api_token), or
    the registry password) needs C(read:packages) and C(delete:packages). O(delete_api_owner_type) says whether the
    first component of the repository is an organization or a user.
  - B(Quay) (Red Hat Quay API, C(DELETE /api/v1/repository/{repository}/tag/{tag})) tries the OCI tag delete first,
    then the tag API with O(api_token) (an OAuth token). B(Harbor) (C(/api/v2.0/.../artifacts/{digest}/tags/{tag}),
    Basic auth with O(username) and O(api_token) or the password) and B(ACR) (C(DELETE /acr/v1/{repository}/_tags/{tag}),
    O(api_token) or the registry's own auth) delete tags through their API. On these three, digests and blobs go
    through V2, and without the API's credential tags go through the throwaway path with a warning.
author:
  - regops.registry contributors (@regops)
options:
  repository:
    description: The repository, for example C(team/app). Either this or O(repositories).
    type: str
  repositories:
    description:
      - Deletes in several repositories in one call, each entry with its own C(repository), C(tags), C(digests),
        C(blobs), C(protect_tags) and C(expected_tags) (as the options of the same names). Every repository is planned, and checked for
        deletes being accepted, before the first delete anywhere; then two repositories are worked on at a time.
    type: list
    elements: dict
    suboptions:
      repository:
        description: The repository.
        type: str
        required: true
      tags:
        description: As O(tags), in this repository.
        type: list
        elements: str
        default: []
      digests:
        description: As O(digests), in this repository.
        type: list
        elements: str
        default: []
      blobs:
        description: As O(blobs), in this repository.
        type: list
        elements: str
        default: []
      protect_tags:
        description: As O(protect_tags), in this repository.
        type: list
        elements: str
        default: []
      expected_tags:
        description: As O(expected_tags), in this repository.
        type: dict
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
  expected_tags:
    description:
      - The tags of the repository as the caller saw them when it chose the deletes, a mapping of each tag to its
        digest; it must name at least every tag the caller saw on each of O(digests).
      - A digest to delete that carries any other tag, when the module plans or just before its C(DELETE), is
        refused (see RV(refused)); so is a tag of O(tags) that points at another digest than the one given here.
      - When the module plans, its tags are taken as they are, without reading them again; tags not named here are
        read. Just before the digest C(DELETE)s every tag that stays is read again (not the tags going with the
        deleted digests), so a kept tag moved onto a digest to delete since the caller read it is found, and that
        digest refused. In check mode nothing is read again.
      - Without it, every tag is read, a digest is deleted with whatever tags it carries, and RV(deleted) names them.
      - The prune role passes the tags its plan was made from.
    type: dict
  concurrency:
    description: How many requests run at once.
    type: int
    default: 8
  delete_api:
    description:
      - Which delete API to use. V(auto) chooses from the host (V(dockerhub) for C(docker.io), C(registry-1.docker.io)
        and C(index.docker.io); V(ghcr) for C(ghcr.io); V(quay) for C(quay.io); V(acr) for C(*.azurecr.io)), else
        asks C(GET /api/v2.0/systeminfo) whether the registry is Harbor, else uses V(v2).
      - V(v2) is the registry API alone (OCI tag delete or throwaway manifests, digest deletes).
    type: str
    default: auto
    choices: [auto, v2, dockerhub, ghcr, harbor, quay, acr]
  delete_api_url:
    description:
      - The base URL of the service's API. Default C(https://hub.docker.com) for Docker Hub, C(https://api.github.com)
        for GHCR, the registry's own origin for Harbor, Quay and ACR.
      - Needed for GitHub Enterprise Server (C(https://HOST/api/v3)) and a Quay whose API is elsewhere.
    type: str
  delete_api_owner_type:
    description:
      - GHCR only. Whether the owner (the first component of the repository) is an organization (V(org), the API
        path C(/orgs/OWNER/packages/...)) or a user (V(user), C(/users/OWNER/packages/...)). V(auto) tries the
        organization, then the user.
    type: str
    default: auto
    choices: [auto, org, user]
  api_token:
    description:
      - The credential of the service's delete API, sent to O(delete_api_url) only. Docker Hub a personal access token
        of O(username) (used in place of O(password)); GHCR a GitHub token with C(read:packages) and C(delete:packages); Quay an OAuth access
        token; Harbor the secret of O(username) (a robot account works); ACR an access token.
      - Without it, the registry's credentials are used where the service accepts them (Docker Hub, GHCR and Harbor
        the O(password); ACR the registry's own token exchange).
    type: str
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
      - sha256:b7c1e402dc8ce4298fceded9ac3f12cf16dc228b81c4ca7326ae4243ced0b50f
  diff: true

- name: Delete what a plan made earlier says, but never a tag the plan keeps
  regops.registry.registry_delete:
    registry: registry.example.com
    repository: team/app
    tags: "{{ plan.delete_tags }}"
    digests: "{{ plan.delete_digests }}"
    protect_tags: "{{ plan.keep_tags }}"

- name: Several repositories in one call
  regops.registry.registry_delete:
    registry: registry.example.com
    repositories:
      - {repository: team/app, tags: [pr-1234, pr-1235]}
      - {repository: team/worker, digests: ["sha256:b5e93cc391e4d304fa6a31385313cbdec55915f4041733f914da42db076d72de"], protect_tags: [stable]}

- name: Delete an old image only if no tag was pushed onto it since it was looked at
  regops.registry.registry_delete:
    registry: registry.example.com
    repository: team/app
    digests:
      - sha256:b7c1e402dc8ce4298fceded9ac3f12cf16dc228b81c4ca7326ae4243ced0b50f
    expected_tags:
      build-41: sha256:b7c1e402dc8ce4298fceded9ac3f12cf16dc228b81c4ca7326ae4243ced0b50f
  register: old_image

- name: Say what was left because CI pushed onto it meanwhile
  ansible.builtin.debug:
    msg: "{{ item.name }} kept for {{ item.unexpected_tags | default([]) | join(', ') }}: {{ item.reason }}"
  loop: "{{ old_image.refused }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
deleted:
  description:
    - What was deleted (in check mode, what would be).
    - C(method) tells how a tag went (C(native) OCI tag delete, C(throwaway) manifest, C(api) the service's tag API,
      C(version) a GHCR version delete, C(absent) already gone) and C(shared_tags) names the other tags on the same
      digest, which stay (on GHCR, the other tags of the version, deleted with it); for a digest, C(removed_tags)
      names every tag that pointed at it (C(method) C(tags) on Docker Hub, where its tags are deleted one by one).
    - C(api) names the API that made the delete (V(v2), V(dockerhub), V(ghcr), V(harbor), V(quay), V(acr)); in check
      mode, the one that would be used.
  returned: always
  type: list
  elements: dict
  sample:
    - {type: tag, name: pr-1234, digest: "sha256:4f53...", method: throwaway, api: v2}
    - {type: digest, name: "sha256:9a1b...", digest: "sha256:9a1b...", removed_tags: [old, older], method: digest, api: v2}
repositories:
  description: With O(repositories), per repository its C(repository), C(changed), C(deleted), C(absent) and
    C(refused); RV(deleted), RV(absent) and RV(refused) then list the entries of every repository, each with its
    C(repository).
  returned: when O(repositories) is given
  type: list
  elements: dict
absent:
  description:
    - What was asked for but is not there (nothing to do; for example everything on a second run).
    - A tag of O(tags) whose digest is deleted too is not listed here but in that digest's C(removed_tags).
  returned: always
  type: list
  elements: dict
  sample: [{type: tag, name: pr-1234}]
refused:
  description:
    - Deletes not made because the registry changed since the caller chose them (see O(expected_tags)); the other
      deletes were made. Each entry has C(type), C(name), C(digest) and a C(reason) sentence.
    - For a digest, C(unexpected_tags) (the tags it carries now that the caller did not see on it) and
      C(expected_tags); for a digest kept with a refused one, C(of) names that one. For a tag, C(digest) is where it
      points now and C(expected_digest) where it pointed.
    - A later run, planned again, deals with them.
    - Also what the service cannot delete, with the reason in C(reason). On GHCR a tag whose version carries a tag
      that stays (C(staying_tags)) and a version a kept index references (C(of)); on Docker Hub an untagged
      manifest; blobs on Docker Hub and GHCR.
  returned: always
  type: list
  elements: dict
  sample:
    - type: digest
      name: "sha256:9a1b..."
      digest: "sha256:9a1b..."
      expected_tags: [build-41]
      unexpected_tags: [hotfix]
      reason: "hotfix now also points at this digest, which the list of deletes did not see: not deleted, so every tag on it stays"
"""

from ansible_collections.regops.registry.plugins.module_utils._service_delete import (
    DELETE_APIS,
    OWNER_TYPES,
    choose_api,
    make_api,
)
from ansible_collections.regops.registry.plugins.module_utils.common import RegistryModule, for_each_repository
from ansible_collections.regops.registry.plugins.module_utils.deletion import (
    apply_delete,
    fit_to_api,
    plan_delete,
    predicted,
    probe_deletes,
)
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.options import concurrency
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    supported_digest,
    validate_tag,
)


PER_REPOSITORY = ("tags", "digests", "blobs", "protect_tags", "expected_tags")


def main() -> None:
    lists = {"type": "list", "elements": "str", "default": []}
    rm = RegistryModule({
        "repository": {"type": "str"},
        "tags": lists,
        "digests": lists,
        "blobs": lists,
        "protect_tags": lists,
        "expected_tags": {"type": "dict"},
        "repositories": {"type": "list", "elements": "dict", "options": {
            "repository": {"type": "str", "required": True}, "tags": lists, "digests": lists, "blobs": lists,
            "protect_tags": lists, "expected_tags": {"type": "dict"}}},
        "concurrency": {"type": "int", "default": 8},
        "delete_api": {"type": "str", "default": "auto", "choices": list(DELETE_APIS)},
        "delete_api_url": {"type": "str"},
        "delete_api_owner_type": {"type": "str", "default": "auto", "choices": list(OWNER_TYPES)},
        "api_token": {"type": "str", "no_log": True},
    }, mutually_exclusive=[("repository", "repositories")], required_one_of=[("repository", "repositories")])

    def requests_of(spec: dict) -> dict:
        """One repository's deletes, every name checked before any request."""
        return {"repository": rm.repository(spec["repository"]),
                "tags": [validate_tag(t) for t in spec["tags"]],
                "digests": [supported_digest(d) for d in spec["digests"]],
                "blobs": [supported_digest(b) for b in spec["blobs"]],
                "protect": [validate_tag(t) for t in spec["protect_tags"]],
                "expected": None if spec["expected_tags"] is None else
                {validate_tag(t): supported_digest(d) for t, d in spec["expected_tags"].items()}}

    def body() -> dict:
        p = rm.params
        if p["repositories"] is not None and any(p[k] for k in PER_REPOSITORY):
            raise InvalidInput("with repositories, give tags, digests, blobs, protect_tags and expected_tags per repository")
        specs = p["repositories"] if p["repositories"] is not None else [{"repository": p["repository"],
                                                                         **{k: p[k] for k in PER_REPOSITORY}}]
        wanted = [requests_of(spec) for spec in specs]
        workers = concurrency(p["concurrency"])
        client = rm.client
        # Every plan (and its protect_tags check) before the first delete anywhere.
        plans = for_each_repository(lambda w: plan_delete(client, w["repository"], tags=w["tags"], digests=w["digests"],
                                                          blobs=w["blobs"], protect=w["protect"],
                                                          expected=w["expected"], concurrency=workers),
                                    wanted)
        # The service's own API where V2 DELETE is refused (chosen only when there is something to delete: the
        # Harbor probe is a request), and what it cannot do taken out of the plans, in check mode too.
        api = None
        if any(plan.changes for plan in plans):
            api = make_api(client, choose_api(client, p["delete_api"], p["delete_api_url"]),
                           api_url=p["delete_api_url"], api_token=p["api_token"], owner_type=p["delete_api_owner_type"])
            for_each_repository(lambda item: fit_to_api(client, item[0]["repository"], item[1], api, workers),
                                list(zip(wanted, plans)))
        changing = [(w["repository"], plan) for w, plan in zip(wanted, plans) if plan.changes]
        if rm.check_mode:
            for repository, _plan in changing:  # what the real run would refuse before its first delete
                if api is not None and not api.v2_digest_deletes:
                    api.require_credential(repository)
            outcomes = [predicted(plan, api) if plan.changes else [] for plan in plans]
        else:
            for repository, _plan in changing:  # deletes refused anywhere: fail before deleting anywhere
                probe_deletes(client, repository, api)

            def apply(item):
                repository, plan = item
                return repository, apply_delete(client, repository, plan, concurrency=workers, probed=True, api=api)

            applied = dict(for_each_repository(apply, changing))
            outcomes = [applied.get(w["repository"], []) for w in wanted]
        per_repository = [{"repository": w["repository"], "changed": bool(outcome), "deleted": outcome,
                           "absent": plan.absent, "refused": plan.refused}
                          for w, plan, outcome in zip(wanted, plans, outcomes)]
        diffs = [{"before": {"repository": r["repository"], "tags": dict(sorted(plan.tag_digests.items()))},
                  "after": {"repository": r["repository"], "tags": plan.after()}} for r, plan in zip(per_repository, plans)]
        if p["repositories"] is None:
            only = per_repository[0]
            return {"changed": only["changed"], "deleted": only["deleted"], "absent": only["absent"],
                    "refused": only["refused"], "diff": diffs[0]}
        return {"changed": any(r["changed"] for r in per_repository), "repositories": per_repository,
                **{key: [dict(item, repository=r["repository"]) for r in per_repository for item in r[key]]
                   for key in ("deleted", "absent", "refused")},
                "diff": diffs}

    rm.run(body)


if __name__ == "__main__":
    main()
