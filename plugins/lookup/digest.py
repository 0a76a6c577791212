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
  - Each reference is resolved on the host it names (a reference without a host, such as C(nginx:1), names Docker
    Hub, C(docker.io)). O(registry) configures one host; a reference naming another host is never sent to it.
  - Credentials (O(username), O(password), O(token), O(client_cert), O(client_key)), whether given as options,
    variables or environment variables, go only to the host O(registry) names (and to the token server that host
    sends the client to). Any other host is reached over HTTPS with only what the Docker C(config.json)
    (O(docker_config)) holds for it, or anonymously. O(ca_path), O(validate_certs), O(timeout) and O(retries) apply
    to every host.
  - Credentials given without O(registry) fail the lookup before any request is sent, since there is no host they
    can be known to belong to.
  - Variables the options read (C(regops_registry), C(regops_registry_username), ...) may be templates, for example
    C({{ corp_registry }}) as the value of C(regops_registry) in group_vars.
options:
  _terms:
    description: Image references, for example C(registry.example.com/team/app:1.2) or C(127.0.0.1:5000/app:latest).
    required: true
    type: list
    elements: str
  registry:
    description:
      - The registry that the credentials belong to, as C(host[:port]) or a URL. References naming that host are
        resolved at this URL, with its scheme and base path, for example C(http://127.0.0.1:5000) for a plain-HTTP
        registry; references naming any other host are resolved on that host over HTTPS, without the credentials.
      - Not needed when no credentials are given.
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

- name: >-
    Pin images of two registries: the one the credentials belong to (usually set in group_vars), and another one,
    read with its own entry of ~/.docker/config.json (or anonymously), never with these credentials
  ansible.builtin.set_fact:
    pins: "{{ query('regops.registry.digest', 'registry.example.com/team/app:1.4.2', 'staging.example.com/team/app:3f2a9c1') }}"
  vars:
    corp_registry: registry.example.com
    regops_registry: "{{ corp_registry }}"
    regops_registry_username: deployer
    regops_registry_password: "{{ vault_prod_password }}"
"""

RETURN = r"""
_raw:
  description: One digest per reference.
  type: list
  elements: str
"""

from collections import ChainMap

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.regops.registry.plugins.module_utils._transport import HAS_REQUESTS
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput, RegistryError
from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_reference, parse_registry

# What identifies the user to a registry: sent to the configured registry only, never to another host a term names.
CREDENTIAL_OPTIONS = ("username", "password", "token", "client_cert", "client_key")


def pick_platform(index: dict, platform: str) -> str:
    """Digest of the child of an index matching ``os/arch[/variant]``."""
    wanted = platform.split("/")
    for descriptor in index.get("manifests") or []:
        p = descriptor.get("platform") or {}
        have = [p.get("os"), p.get("architecture")] + ([p["variant"]] if p.get("variant") and len(wanted) > 2 else [])
        if have == wanted:
            return descriptor["digest"]
    raise InvalidInput(f"no manifest for platform {platform}")


def configured_host(get) -> str | None:
    """The host the ``registry`` option names (Docker Hub aliases as ``docker.io``); None when not set.

    Credentials with no registry to bind them to are refused, before any request: sending them to whatever
    host a term names is the leak this plugin must not have.
    """
    registry = get("registry")
    if registry:
        return parse_registry(registry).canonical_host
    given = [name for name in CREDENTIAL_OPTIONS if get(name)]
    if given:
        raise InvalidInput(f"{', '.join(given)} given without a registry: set the registry option (or the variable "
                           "regops_registry) to the registry they belong to; they are sent to that registry only")
    return None


def without_credentials(get):
    """``get`` for a host other than the configured one: it keeps trust and limits, and only the Docker config's
    own entry for that host can authenticate it."""
    return lambda name: None if name in CREDENTIAL_OPTIONS else get(name)


def connection_for(ref, get, own_host: str | None) -> tuple:
    """``(registry URL, option getter)`` for the host a term names: the configured URL and every option for the
    configured host, the bare host (HTTPS) without the option credentials for any other."""
    if own_host is not None and ref.registry == own_host:
        return get("registry"), get
    return ref.registry, without_credentials(get)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if not HAS_REQUESTS:
            raise AnsibleLookupError("the regops.registry.digest lookup needs the Python library 'requests'")
        self.set_options(var_options=self._templated(variables), direct=kwargs)
        try:
            own_host = configured_host(self.get_option)
            return [self._digest(str(term), own_host) for term in terms]
        except (InvalidInput, AuthError, RegistryError) as exc:
            raise AnsibleLookupError(f"regops.registry.digest: {exc}") from None

    def _templated(self, variables):
        """``variables`` with the ones our options read templated: ansible-core 2.19 hands them over as written, so
        ``regops_registry: "{{ corp_registry }}"`` would otherwise arrive as the template text."""
        if not variables or self._templar is None:
            return variables
        names = {entry["name"] for option in self.option_definitions.values() for entry in option.get("vars") or []}
        return ChainMap({name: self._templar.template(variables[name]) for name in names & variables.keys()},
                        variables)

    def _digest(self, term: str, own_host: str | None) -> str:
        from ansible_collections.regops.registry.plugins.module_utils.common import build_client

        ref = parse_reference(term)
        registry, get = connection_for(ref, self.get_option, own_host)
        client = build_client(get, warn=self._display.warning, registry=registry)
        try:
            head = client.head_manifest(ref.repository, ref.reference)
            if head is None:
                raise InvalidInput(f"{term} does not exist")
            digest = head.digest
            platform = self.get_option("platform")
            if platform:
                index = client.get_manifest(ref.repository, digest)
                digest = pick_platform(index.data, platform) if "manifests" in index.data else digest
            return digest
        finally:
            client.close()
