# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: digest
short_description: The digest of an image reference, for pinning deployments
version_added: 0.1.0
author:
  - regops.registry contributors (@regops)
description:
  - Resolves each image reference (C(host/repository:tag)) to the digest it points at now, with one C(HEAD) request.
  - By default the digest of what the tag names (for a multi-platform image, the index digest); with O(platform),
    the digest of that platform's manifest.
  - A reference that already carries a digest is checked to exist and returned as is.
options:
  _terms:
    description: Image references, for example C(registry.example.com/team/app:1.2) or C(127.0.0.1:5000/app:latest).
    required: true
    type: list
    elements: str
  registry:
    description:
      - The registry URL to use for every reference, for example C(http://127.0.0.1:5000) for a plain-HTTP registry.
        By default the host of each reference, over HTTPS.
    required: false
  platform:
    description: C(os/architecture[/variant]) of the manifest to pick from a multi-platform image, for example C(linux/arm64).
    type: str
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.connection.PLUGINS
"""

EXAMPLES = r"""
- name: Deploy by digest, not by a tag that may move
  ansible.builtin.set_fact:
    app_image: "registry.example.com/team/app@{{ lookup('regops.registry.digest', 'registry.example.com/team/app:1.4.2') }}"

- name: The arm64 manifest of a multi-platform image, from a plain-HTTP lab registry
  ansible.builtin.debug:
    msg: "{{ lookup('regops.registry.digest', '127.0.0.1:5000/demo/multi:1.0', registry='http://127.0.0.1:5000', platform='linux/arm64') }}"
"""

RETURN = r"""
_raw:
  description: One digest per reference.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.regops.registry.plugins.module_utils._transport import HAS_REQUESTS
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput, RegistryError
from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_reference


def pick_platform(index: dict, platform: str) -> str:
    """Digest of the child of an index matching ``os/arch[/variant]``."""
    wanted = platform.split("/")
    for descriptor in index.get("manifests") or []:
        p = descriptor.get("platform") or {}
        have = [p.get("os"), p.get("architecture")] + ([p["variant"]] if p.get("variant") and len(wanted) > 2 else [])
        if have == wanted:
            return descriptor["digest"]
    raise InvalidInput(f"no manifest for platform {platform}")


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if not HAS_REQUESTS:
            raise AnsibleLookupError("the regops.registry.digest lookup needs the Python library 'requests'")
        from ansible_collections.regops.registry.plugins.module_utils.common import build_client

        self.set_options(var_options=variables, direct=kwargs)
        platform = self.get_option("platform")
        results = []
        for term in terms:
            try:
                ref = parse_reference(str(term))
                client = build_client(self.get_option, warn=self._display.warning,
                                      registry=self.get_option("registry") or ref.registry)
                try:
                    head = client.head_manifest(ref.repository, ref.reference)
                    if head is None:
                        raise InvalidInput(f"{term} does not exist")
                    digest = head.digest
                    if platform:
                        index = client.get_manifest(ref.repository, digest)
                        digest = pick_platform(index.data, platform) if "manifests" in index.data else digest
                finally:
                    client.close()
            except (InvalidInput, AuthError, RegistryError) as exc:
                raise AnsibleLookupError(f"regops.registry.digest: {exc}") from None
            results.append(digest)
        return results
