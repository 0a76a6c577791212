#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_blob_upload
short_description: Upload blobs from files, or mount or copy them from another repository or registry
version_added: 0.1.0
description:
  - Puts blobs into a repository. Each blob is first looked up in the target (C(HEAD)); one that is already there is
    reported as C(exists) and no byte is sent, so a second run changes nothing.
  - From a file, the blob is streamed from disk in constant memory; up to O(chunk_size) in one request (C(POST) then
    C(PUT)), larger ones in chunked C(PATCH) requests that resume from the registry's reported offset after an
    interruption.
  - From another repository of the same registry, the blob is mounted (no bytes sent); where the registry declines
    the mount, it is streamed through instead. From another registry, it is streamed from source to target without
    being held in memory.
  - Many blobs (O(blobs)) are handled in one call, O(concurrency) at a time, on one pooled connection set.
author:
  - regops.registry contributors (@regops)
options:
  repository:
    description: The target repository, for example C(team/app).
    type: str
    required: true
  path:
    description: A local file to upload as one blob. Mutually exclusive with O(source) and O(blobs).
    type: path
  digest:
    description:
      - With O(source), the digest of the blob to mount or copy.
      - With O(path), the digest the file must have (C(sha256:...)); a file that hashes to anything else is refused.
        Knowing it saves time on a large file, which is then hashed from the very blocks read to send its chunks
        instead of before (read once); the upload is closed only if they hash to it, else cancelled. The registry is
        asked for the blob by this digest first either way.
    type: str
  source:
    description:
      - Where a blob given by O(digest) comes from. A repository name (C(team/base)) means this registry; a name
        starting with a host (C(registry.other.example/team/base), C(127.0.0.1:5001/team/base)) means another
        registry, reached with O(source_connection).
    type: str
  blobs:
    description:
      - Several blobs in one call; each item has O(path) (and optionally O(digest)), or O(digest) and O(source).
    type: list
    elements: dict
    suboptions:
      path:
        description: Local file.
        type: path
      digest:
        description: Blob digest (as O(digest)).
        type: str
      source:
        description: Source repository (or C(host/repository)) for O(blobs[].digest).
        type: str
  chunk_size:
    description:
      - Files up to this size go in one request; larger files in chunks of this size. Accepts units (C(64MB), C(1GiB)).
      - A registry that announces a minimum chunk (C(OCI-Chunk-Min-Length)) gets chunks of at least that size. When
        the registry refuses to close an upload sent in chunks under 5 MiB (Amazon ECR, which announces nothing),
        the file is sent once more in 5 MiB chunks, with a warning.
    type: str
    default: 64MiB
  concurrency:
    description: How many blobs move at once.
    type: int
    default: 4
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.connection.SOURCE
  - regops.registry.attributes
  - regops.registry.attributes.WRITES
"""

EXAMPLES = r"""
- name: Upload a layer from a file (streamed, chunked above 64 MiB)
  regops.registry.registry_blob_upload:
    registry: registry.example.com
    repository: team/app
    path: /tmp/layer.tar.gz

- name: Mount a blob from another repository of the same registry (no bytes sent)
  regops.registry.registry_blob_upload:
    registry: registry.example.com
    repository: team/app
    digest: sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
    source: team/base

- name: Copy blobs from another registry
  regops.registry.registry_blob_upload:
    registry: registry.example.com
    repository: team/app
    blobs:
      - digest: sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
        source: staging.example.com/team/app
    source_connection:
      username: reader
      password: "{{ staging_password }}"
"""

RETURN = r"""
digest:
  description: Digest of the blob (single-blob form).
  returned: when one blob was given with O(path) or O(digest)
  type: str
  sample: sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
size:
  description: Size in bytes, when known.
  returned: when one blob was given
  type: int
  sample: 3145728
how:
  description: How the blob got there (C(exists), C(mounted) or C(uploaded)); in check mode, how it would.
  returned: when one blob was given
  type: str
  sample: mounted
blobs:
  description: One entry per blob with C(digest), C(size), C(how), C(changed) and C(source).
  returned: always
  type: list
  elements: dict
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.regops.registry.plugins.module_utils.common import RegistryModule, source_connection_spec
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.options import concurrency, split_source
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry, supported_digest
from ansible_collections.regops.registry.plugins.module_utils.uploads import transfer_blob, upload_file

MIN_CHUNK = 1 << 20


def normalise_items(params: dict, registry_host: str) -> list[dict]:
    """Validate every blob request before any request is sent."""
    items = params["blobs"] or []
    if params["path"] or params["digest"]:
        if items:
            raise InvalidInput("give either path/digest/source or blobs, not both")
        items = [{"path": params["path"], "digest": params["digest"], "source": params["source"]}]
    elif params["source"]:
        raise InvalidInput("source needs digest: the digest of the blob to copy from that repository")
    if not items:
        raise InvalidInput("nothing to upload: give path, digest with source, or blobs")
    out = []
    for index, item in enumerate(items):
        path, digest, source = item.get("path"), item.get("digest"), item.get("source")
        where = f"blobs[{index}]" if params["blobs"] else "the blob"
        if digest:
            supported_digest(digest)
        if path and source:
            raise InvalidInput(f"{where}: give path or source, not both")
        if not path and not (digest and source):
            raise InvalidInput(f"{where}: needs path, or digest with source")
        host, ref = split_source(source, registry_host) if source else (None, None)
        if ref is not None and (ref.tag or ref.digest):
            raise InvalidInput(f"{where}: source names a repository, without tag or digest: '{source}'")
        out.append({"path": path, "digest": digest, "source_host": host,
                    "source_repository": ref.repository if ref else None})
    return out


def main() -> None:
    rm = RegistryModule({
        "repository": {"type": "str", "required": True},
        "path": {"type": "path"},
        "digest": {"type": "str"},
        "source": {"type": "str"},
        "source_connection": source_connection_spec(),
        "blobs": {"type": "list", "elements": "dict", "options": {
            "path": {"type": "path"},
            "digest": {"type": "str"},
            "source": {"type": "str"},
        }},
        "chunk_size": {"type": "str", "default": "64MiB"},
        "concurrency": {"type": "int", "default": 4},
    })

    def body() -> dict:
        p = rm.params
        repository = rm.repository(p["repository"])
        items = normalise_items(p, parse_registry(p["registry"]).host)
        try:
            chunk_size = human_to_bytes(re.sub(r"(?i)ib$", "B", p["chunk_size"].strip()))
        except ValueError as exc:
            raise InvalidInput(f"chunk_size: {exc}") from None
        if chunk_size < MIN_CHUNK:
            raise InvalidInput(f"chunk_size must be at least 1MiB, not {p['chunk_size']}")
        workers = concurrency(p["concurrency"])
        for item in items:
            if item["path"]:
                if not os.path.isfile(item["path"]):
                    raise InvalidInput(f"{item['path']} is not a readable file")
        client = rm.client
        sources = {}
        for item in items:
            host = item["source_host"]
            if host and host not in sources:
                sources[host] = rm.client_for(host, p["source_connection"])

        def one(item: dict):
            if item["path"]:
                return upload_file(client, repository, item["path"], digest=item["digest"], chunk_size=chunk_size,
                                   check_mode=rm.check_mode)
            source_client = sources[item["source_host"]] if item["source_host"] else client
            size = source_client.head_blob(item["source_repository"], item["digest"])
            if size is None:
                raise InvalidInput(f"the blob {item['digest']} is not in {item['source_repository']}")
            return transfer_blob(source_client, item["source_repository"], client, repository, item["digest"],
                                 size if size >= 0 else None, check_mode=rm.check_mode)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = [r.as_dict() for r in pool.map(one, items)]
        for source_client in sources.values():
            source_client.close()
        out = {"changed": any(r["changed"] for r in results), "blobs": results}
        if len(results) == 1 and not p["blobs"]:
            out.update({k: results[0].get(k) for k in ("digest", "size", "how")})
        out["diff"] = {"before": {"blobs": sorted(r["digest"] for r in results if not r["changed"])},
                       "after": {"blobs": sorted(r["digest"] for r in results)}}
        return out

    rm.run(body)


if __name__ == "__main__":
    main()
