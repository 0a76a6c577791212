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
    description: The repository, for example C(team/app).
    type: str
    required: true
  reference:
    description: Tag or digest to read. Ignored when writing.
    type: str
    default: latest
  tag:
    description: Tag to write. Needs O(source) or O(content).
    type: str
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
      - Repositories of this registry that may already hold the source's blobs, such as the target of an earlier
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
"""

RETURN = r"""
digest:
  description: Digest of the manifest read, or written to O(tag).
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
  returned: when writing
  type: str
blobs:
  description: When copying from another repository or registry, one entry per blob with C(how) (C(exists), C(mounted), C(uploaded)).
  returned: when writing from O(source)
  type: list
  elements: dict
manifests:
  description: Manifests written (or that would be), children first, with C(how) (C(exists) or C(written)).
  returned: when writing from O(source)
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


def main() -> None:
    rm = RegistryModule({
        "repository": {"type": "str", "required": True},
        "reference": {"type": "str", "default": "latest"},
        "tag": {"type": "str"},
        "source": {"type": "str"},
        "source_connection": source_connection_spec(),
        "content": {"type": "raw"},
        "media_type": {"type": "str"},
        "mount_from": {"type": "list", "elements": "str", "default": []},
        "concurrency": {"type": "int", "default": 8},
        "min_ratelimit_remaining": {"type": "int", "default": 0},
    }, mutually_exclusive=[("source", "content")])

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

    def body() -> dict:
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
