#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_manifest
short_description: Read a manifest and its image facts, or write one (retag, promote, put content)
version_added: 0.1.0
description:
  - Without O(tag), reads the manifest that O(reference) names and returns it with the image facts behind it
    (created, size, platforms, labels; per platform for an index).
  - With O(tag) and O(source), makes O(tag) point at the same image as the source, byte for byte (the target digest
    equals the source digest). A source in the same repository costs one manifest write; in another repository of the
    same registry, the blobs are mounted (no bytes sent); on another registry, only the blobs the target lacks are
    streamed. An index is copied whole, children first.
  - With O(targets) and O(source), does the same for several tags at once, in this registry and in others. The
    source is resolved to its digest once, first, and every target gets that digest, even if the source tag moves
    meanwhile. The source manifest is read once, and only when some target lacks its digest.
  - With O(tag) and O(content), writes the given manifest.
  - Writes are idempotent (a tag that already has the wanted digest is left alone, no write is sent) and support check
    mode and diff.
  - Manifests are resolved with C(HEAD) first and each is read with one C(GET) at most (on Docker Hub a GET counts as a
    pull, a HEAD does not); a copy whose target already has the source's digest reads nothing.
  - On Docker Hub a one-component O(repository) (C(nginx)) is an official image, C(library/nginx), as Docker names it;
    results name it so.
  - Writing a manifest with a C(subject) (a signature, SBOM or attestation) to a registry that does not index referrers
    itself (no C(OCI-Subject) in its answer) also lists it in the subject's referrers fallback tag C(sha256-<hex>), as
    the OCI distribution specification asks of clients.
author:
  - regops.registry contributors (@regops)
options:
  repository:
    description:
      - The repository, for example C(team/app).
      - Required, except with O(targets) when every target names its repository and O(source) names its own.
    type: str
  reference:
    description: Tag or digest to read. Ignored when writing.
    type: str
    default: latest
  tag:
    description: Tag to write. Needs O(source) or O(content).
    type: str
  targets:
    description:
      - Several tags to make the image of O(source), in one call, instead of O(tag). Written in order; the result
        lists each in RV(targets).
      - A target in another repository of the source's registry gets the blobs mounted from the source. A target on
        another registry gets them mounted from an earlier target of that registry (or one already at the source's
        digest), then from O(mount_from), and only the rest are streamed from the source.
      - Each registry is reached with its own options only. A target on another registry gets its
        O(targets[].connection), the source the module's options or O(source_connection).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      repository:
        description: The target's repository. When not set, O(repository).
        type: str
      tag:
        description: The tag to write.
        type: str
        required: true
      registry:
        description:
          - The target's registry, C(host[:port]) or a URL with its scheme (C(http://127.0.0.1:5001)), when it is
            not O(registry).
        type: str
      connection:
        description:
          - Connection options for a target on another registry, the same as O(source_connection) (unset ones are
            taken over from the module's own options the same way, never its credentials or client certificate).
          - Targets on one registry share the options of the first of them that gives any; a different set on a
            later one is refused. Ignored for a target on O(registry).
        type: dict
        suboptions:
          username:
            description: Username on the target's registry.
            type: str
          password:
            description: Password on the target's registry.
            type: str
          token:
            description: Pre-issued bearer token for the target's registry.
            type: str
          docker_config:
            description: Docker C(config.json) to find the target registry's credentials in. When not set, O(docker_config).
            type: path
          validate_certs:
            description: Verify the target registry's TLS certificate. When not set, O(validate_certs).
            type: bool
          ca_path:
            description: CA bundle for the target's registry. When not set, O(ca_path).
            type: path
          client_cert:
            description: Client certificate (PEM) for mutual TLS with the target's registry.
            type: path
          client_key:
            description: Key of O(targets[].connection.client_cert), when not in the same file.
            type: path
          timeout:
            description: Per-request timeout in seconds on the target's registry. When not set, O(timeout).
            type: float
          retries:
            description: Retries of safe requests on the target's registry. When not set, O(retries).
            type: int
  source:
    description:
      - What O(tag) should point at. A tag or digest of O(repository) (C(1.2.3), C(sha256:...)), another repository
        of this registry (C(staging/app:1.2.3), C(staging/app@sha256:...)), or a full reference on another
        registry (C(registry.other.example/team/app:1.2.3)), reached with O(source_connection).
    type: str
  content:
    description:
      - A manifest to write to O(tag), as a dict (serialised compactly) or a string (written byte for byte).
      - Every blob and child manifest it references must already be in the repository.
    type: raw
  media_type:
    description: Media type of O(content); defaults to its C(mediaType) field.
    type: str
  mount_from:
    description:
      - Repositories of this registry (with O(targets), of each target's registry) that may already hold the source's blobs, such as the target of an earlier
        promotion of the same image. When O(source) is on another registry, each blob is mounted from the first of
        them that has it before any byte is streamed; a repository that lacks the blob, or that the credentials cannot
        read, costs no extra request (the refused mount's upload session carries the copy).
      - Ignored when O(source) is on this registry (its own repository is the mount source).
    type: list
    elements: str
    default: []
  concurrency:
    description: How many requests run at once (blob transfers, child manifests).
    type: int
    default: 8
  min_ratelimit_remaining:
    description:
      - Where the registry announces a pull rate limit (Docker Hub's C(ratelimit-remaining) header, see RV(ratelimit)),
        the pulls to leave unused. Before its manifest GETs (each a pull; HEADs are free) the module fails, sending
        nothing more, when the pulls it needs exceed the last announced remainder less this number.
    type: int
    default: 0
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.connection.SOURCE
  - regops.registry.attributes
  - regops.registry.attributes.WRITES
"""

EXAMPLES = r"""
- name: Read a tag with its image facts
  regops.registry.registry_manifest:
    registry: registry.example.com
    repository: team/app
    reference: "1.4.2"
  register: app

- name: Retag within the repository (one manifest write)
  regops.registry.registry_manifest:
    registry: registry.example.com
    repository: team/app
    tag: stable
    source: "1.4.2"

- name: Promote the tested digest from staging (blobs mounted, not copied)
  regops.registry.registry_manifest:
    registry: registry.example.com
    repository: prod/app
    tag: "1.4.2"
    source: "staging/app@{{ tested_digest }}"

- name: Promote to another registry, mounting blobs that the previous release already brought there
  regops.registry.registry_manifest:
    registry: prod-registry.example.com
    repository: team/app
    tag: "1.5.0"
    source: "ci-registry.example.com/team/app@{{ tested_digest }}"
    source_connection:
      username: ci
      password: "{{ ci_registry_password }}"
    mount_from:
      - team/app-canary

- name: Promote one digest to several tags and registries in one call (one module process, the source read once)
  regops.registry.registry_manifest:
    registry: ci-registry.example.com
    username: ci
    password: "{{ ci_registry_password }}"
    repository: team/app
    source: "{{ tested_digest }}"
    targets:
      - tag: "1.5.0"
      - repository: prod/app
        tag: "1.5.0"
      - registry: prod-registry.example.com
        repository: prod/app
        tag: "1.5.0"
        connection:
          username: deployer
          password: "{{ vault_prod_password }}"
      - registry: prod-registry.example.com
        repository: prod/app
        tag: "1.5"
  register: promoted
"""

RETURN = r"""
digest:
  description: Digest of the manifest read, or written to O(tag) (to every target of O(targets)).
  returned: success
  type: str
  sample: sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
media_type:
  description: Media type of that manifest.
  returned: success
  type: str
  sample: application/vnd.oci.image.index.v1+json
manifest:
  description: The manifest (parsed JSON), read or written from O(content).
  returned: when reading, or writing from O(content)
  type: dict
source:
  description: Where the image was copied from, as resolved from O(source) (C(registry) host, C(repository),
    C(reference)).
  returned: when writing from O(source)
  type: dict
  sample: {registry: registry.example.com, repository: team/app, reference: "1.4.2"}
image:
  description: Image facts (C(created), C(created_source), C(size), C(platforms), C(labels), C(annotations),
    C(artifact_type); for an index also C(manifests), one entry per platform).
  returned: when reading
  type: dict
previous_digest:
  description: Digest O(tag) pointed at before (null when it did not exist).
  returned: when writing O(tag)
  type: str
blobs:
  description: When copying from another repository or registry, one entry per blob with C(how) (C(exists), C(mounted), C(uploaded)).
  returned: when writing O(tag) from O(source)
  type: list
  elements: dict
manifests:
  description: Manifests written (or that would be), children first, with C(how) (C(exists) or C(written)).
  returned: when writing O(tag) from O(source)
  type: list
  elements: dict
targets:
  description: One entry per target of O(targets), in their order.
  returned: when writing to O(targets)
  type: list
  elements: dict
  contains:
    target:
      description: The target as a full reference, C(host/repository:tag).
      type: str
      sample: registry.example.com/prod/app:1.5.0
    registry:
      description: The target registry's host.
      type: str
    repository:
      description: The target's repository, as its registry names it.
      type: str
    tag:
      description: The tag written.
      type: str
    digest:
      description: The digest the tag has now (or would have in check mode), the source's.
      type: str
    media_type:
      description: Media type of that manifest.
      type: str
    previous_digest:
      description: Digest the tag pointed at before (null when it did not exist).
      type: str
    changed:
      description: Whether this target was (or would be) written.
      type: bool
    blobs:
      description: As RV(blobs), for this target (empty when it already had the digest).
      type: list
      elements: dict
    manifests:
      description: As RV(manifests), for this target (empty when it already had the digest).
      type: list
      elements: dict
ratelimit:
  description:
    - The pull rate limit the registry that was read from last announced (Docker Hub's C(ratelimit-limit) and
      C(ratelimit-remaining) headers on manifest requests), as it stood after this task's requests.
  returned: when that registry announces one
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

import json

from ansible_collections.regops.registry.plugins.module_utils.common import (
    RegistryModule,
    add_ratelimit,
    source_connection_spec,
    target_connection_spec,
)
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.options import (
    concurrency,
    min_ratelimit_remaining,
    resolve_source,
)
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    compute_digest,
    parse_registry,
    validate_reference,
    validate_tag,
)


def content_bytes(content, media_type: str | None) -> tuple[bytes, str]:
    """Bytes and media type of user-given content (a string is kept byte for byte)."""
    if isinstance(content, (dict, list)):
        raw = json.dumps(content, separators=(",", ":")).encode("utf-8")
        data = content
    elif isinstance(content, str):
        raw = content.encode("utf-8")
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise InvalidInput(f"content is not valid JSON: {exc}") from None
    else:
        raise InvalidInput("content must be a dict or a JSON string")
    if not isinstance(data, dict):
        raise InvalidInput("content must be a JSON object")
    media_type = media_type or data.get("mediaType")
    if not media_type:
        raise InvalidInput("content has no mediaType field: give media_type")
    if data.get("mediaType") and data["mediaType"] != media_type:
        raise InvalidInput(f"media_type {media_type} differs from the content's mediaType {data['mediaType']}")
    return raw, media_type


def target_list(rm: RegistryModule, entries: list[dict], own_host: str) -> tuple[list, list]:
    """The targets with their registries' clients (one per registry, built from its own options), checked before
    any request: the module's client for its own registry, a client of its own for each other registry."""
    from ansible_collections.regops.registry.plugins.module_utils.copy import Target

    if not entries:
        raise InvalidInput("targets names no target")
    clients: dict[str, tuple] = {}  # host -> (client, the connection options it was built from)
    targets = []
    for entry in entries:
        name = entry["repository"] or rm.params["repository"]
        if not name:
            raise InvalidInput(f"target tag '{entry['tag']}' names no repository, and repository is not set")
        location = parse_registry(entry["registry"]) if entry["registry"] else None
        if location is None or location.host == own_host:
            targets.append(Target(rm.client, rm.repository(name), validate_tag(entry["tag"])))
            continue
        given = {k: v for k, v in (entry["connection"] or {}).items() if v is not None}
        if location.host not in clients:
            clients[location.host] = (rm.client_for(entry["registry"], given), given)
        elif given and given != clients[location.host][1]:
            raise InvalidInput(f"targets on {location.host} give different connection options; give them once")
        targets.append(Target(clients[location.host][0], location.repository(name), validate_tag(entry["tag"])))
    return targets, [client for client, _given in clients.values()]


def target_names(target) -> dict:
    """How a target is named in the result: its full reference and its parts."""
    host = target.client.location.canonical_host
    return {"target": f"{host}/{target.repository}:{target.tag}", "registry": host,
            "repository": target.repository, "tag": target.tag}


def main() -> None:
    rm = RegistryModule({
        "repository": {"type": "str"},
        "reference": {"type": "str", "default": "latest"},
        "tag": {"type": "str"},
        "targets": {"type": "list", "elements": "dict", "options": {
            "repository": {"type": "str"},
            "tag": {"type": "str", "required": True},
            "registry": {"type": "str"},
            "connection": target_connection_spec(),
        }},
        "source": {"type": "str"},
        "source_connection": source_connection_spec(),
        "content": {"type": "raw"},
        "media_type": {"type": "str"},
        "mount_from": {"type": "list", "elements": "str", "default": []},
        "concurrency": {"type": "int", "default": 8},
        "min_ratelimit_remaining": {"type": "int", "default": 0},
    }, mutually_exclusive=[("source", "content"), ("tag", "targets"), ("content", "targets")],
        required_by={"targets": "source"})

    def read() -> dict:
        from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer, public

        repository = rm.repository(rm.params["repository"])
        reference = validate_reference(rm.params["reference"])
        workers = concurrency(rm.params["concurrency"])
        head = rm.client.head_manifest(repository, reference, confirm_missing=True)
        if head is None:
            rm.client.get_manifest(repository, reference)  # the registry's own words for the failure
        gatherer = FactsGatherer(rm.client, workers, min_ratelimit_remaining(rm.params["min_ratelimit_remaining"]))
        facts = gatherer.for_digest(repository, head.digest)  # the one GET of that manifest, cached
        manifest = gatherer.manifest(repository, head.digest)
        return {"changed": False, "digest": manifest.digest, "media_type": manifest.media_type,
                "manifest": manifest.data, "image": public(facts)}

    def write_content(repository: str, tag: str) -> dict:
        raw, media_type = content_bytes(rm.params["content"], rm.params["media_type"])
        digest = compute_digest(raw)
        current = rm.client.head_manifest(repository, tag)
        result = {"digest": digest, "media_type": media_type, "manifest": json.loads(raw),
                  "previous_digest": current.digest if current else None,
                  "changed": current is None or current.digest != digest}
        if result["changed"] and not rm.check_mode:
            rm.client.put_manifest(repository, tag, raw, media_type, list_referrer=True)
        return result

    def write_source(repository: str, tag: str) -> dict:
        from ansible_collections.regops.registry.plugins.module_utils.copy import copy_image

        host, source_repository, source_reference = resolve_source(
            rm.params["source"], repository, parse_registry(rm.params["registry"]).host)
        mount_from = tuple(rm.repository(r) for r in rm.params["mount_from"])
        workers = concurrency(rm.params["concurrency"])
        source_client = rm.client_for(host, rm.params["source_connection"]) if host else rm.client
        try:
            result = copy_image(source_client, source_repository, source_reference, rm.client, repository, tag,
                                check_mode=rm.check_mode, concurrency=workers, mount_from=mount_from,
                                reserve=min_ratelimit_remaining(rm.params["min_ratelimit_remaining"]))
            add_ratelimit(result, source_client)
        finally:
            if source_client is not rm.client:
                source_client.close()
        result["source"] = {"registry": host or rm.client.location.host, "repository": source_repository,
                            "reference": source_reference}
        return result

    def write_targets() -> dict:
        from ansible_collections.regops.registry.plugins.module_utils.copy import copy_to_targets

        own_host = parse_registry(rm.params["registry"]).host
        host, source_repository, source_reference = resolve_source(
            rm.params["source"], rm.params["repository"] and rm.repository(rm.params["repository"]), own_host)
        if not source_repository:
            raise InvalidInput(f"source '{rm.params['source']}' is a tag or digest of repository, which is not set")
        targets, clients = target_list(rm, rm.params["targets"], own_host)
        workers = concurrency(rm.params["concurrency"])
        source_client = rm.client_for(host, rm.params["source_connection"]) if host else rm.client
        try:
            result = copy_to_targets(
                source_client, source_repository, source_reference, targets, check_mode=rm.check_mode,
                concurrency=workers, mount_from=tuple(rm.repository(r) for r in rm.params["mount_from"]),
                reserve=min_ratelimit_remaining(rm.params["min_ratelimit_remaining"]))
            add_ratelimit(result, source_client)
        finally:
            for client in {source_client, *clients} - {rm.client}:
                client.close()
        for target, outcome in zip(targets, result["targets"]):
            outcome.update(target_names(target))
        result["source"] = {"registry": host or rm.client.location.host, "repository": source_repository,
                            "reference": source_reference}
        result["diff"] = [{"before_header": t["target"], "after_header": t["target"],
                           "before": {"target": t["target"], "digest": t["previous_digest"]},
                           "after": {"target": t["target"], "digest": t["digest"]}} for t in result["targets"]]
        return result

    def body() -> dict:
        if rm.params["targets"] is not None:
            return write_targets()
        if not rm.params["repository"]:
            raise InvalidInput("repository is required (or targets that name theirs)")
        if not rm.params["tag"]:
            if rm.params["source"] is not None or rm.params["content"] is not None:
                raise InvalidInput("source and content need tag")
            return add_ratelimit(read(), rm.client)
        repository = rm.repository(rm.params["repository"])
        tag = validate_tag(rm.params["tag"])
        if rm.params["source"]:
            result = write_source(repository, tag)
        elif rm.params["content"] is not None:
            result = write_content(repository, tag)
        else:
            raise InvalidInput("tag needs source or content")
        if "ratelimit" not in result:
            add_ratelimit(result, rm.client)
        result["diff"] = {"before": {"repository": repository, "tag": tag, "digest": result["previous_digest"]},
                          "after": {"repository": repository, "tag": tag, "digest": result["digest"]}}
        return result

    rm.run(body)


if __name__ == "__main__":
    main()
