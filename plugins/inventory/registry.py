# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: registry
short_description: One inventory host per image (repository and tag) of a container registry
version_added: 0.1.0
author:
  - regops.registry contributors (@regops)
description:
  - Reads repositories (named, or matched against the catalog), their tags and the facts of every tag (digest, created,
    size, platforms, labels) and makes one host per image, named C(<repository>@<tag>) so that it works in host
    patterns, with the facts as host variables C(registry_image_*), and one group per repository.
  - Facts of a repository are gathered in one concurrent pass (one C(HEAD) per tag, one manifest and config read per
    distinct digest), as the M(regops.registry.registry_tags) module does.
  - Everything that comes from the registry (tags, labels, annotations) is untrusted data and is never templated.
  - Configuration files must end in C(registry.yml) or C(registry.yaml).
  - O(compose) and O(keyed_groups) expressions that read only host variables are evaluated once per distinct value
    of the variables they read (a key on C(registry_image_architectures) once per architecture list, one on
    C(registry_image_digest) once per image), not once per tag; the result is the same for every host. Expressions
    that call lookups or read other variables are evaluated for every host. Without O(compose), O(groups) and
    O(keyed_groups), no expression is evaluated at all.
  - O(registry), O(username), O(password) and O(token) may be templates, rendered with the extra variables
    (C(-e)) available, for example a C(ansible.builtin.env) lookup for the password.
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    required: true
    choices: [regops.registry.registry]
  repositories:
    description:
      - Repository names, or Python regular expressions matched (C(re.fullmatch)) against the catalog.
      - A name without regular expression characters is used as is, without reading the catalog (for registries
        that do not offer one).
    type: list
    elements: str
    default: ['.*']
  tags:
    description: Python regular expressions; only tags matching one of them (C(re.search)) become hosts.
    type: list
    elements: str
    default: []
  tag_limit:
    description: At most this many tags per repository, the newest by image creation date.
    type: int
  concurrency:
    description: How many requests run at once.
    type: int
    default: 8
  group_prefix:
    description: Prefix of the per-repository group names (C(<prefix><repository with / . - as _>)).
    type: str
    default: repo_
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.connection.PLUGINS
  - constructed
  - inventory_cache
"""

EXAMPLES = r"""
# lab.registry.yml
plugin: regops.registry.registry
registry: https://registry.example.com
username: reader
repositories: ['team/.*']
tags: ['^v?\d+\.\d+\.\d+$']
tag_limit: 10
keyed_groups:
  - key: registry_image_architectures
    prefix: arch
  - key: registry_image_labels['org.opencontainers.image.vendor'] | default('none')
    prefix: vendor
compose:
  image_pin: registry_image_repository ~ '@' ~ registry_image_digest
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/regops-registry-inventory
"""

import copy
import json
import re

import jinja2
from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.regops.registry.plugins.module_utils._auth import AuthError
from ansible_collections.regops.registry.plugins.module_utils._transport import HAS_REQUESTS
from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput, RegistryError
from ansible_collections.regops.registry.plugins.module_utils.options import compile_regexes, concurrency, positive_int
from ansible_collections.regops.registry.plugins.module_utils.reference import REPOSITORY_RE, validate_repository

PLAIN_NAME = re.compile(r"^[a-z0-9._/-]+$")
# Connection options a configuration may write as a template, as other inventory plugins allow: a password from a
# vault or environment lookup, a registry from an extra variable. Path options are not: Ansible has already made
# them absolute paths by then.
TEMPLATED_OPTIONS = frozenset(("registry", "username", "password", "token"))


def host_name(repository: str, tag: str) -> str:
    """``team/app@1.2``: no ':' (host patterns split on it) and unique ('@' is in neither names nor tags)."""
    return f"{repository}@{tag}"


def group_name(prefix: str, repository: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", repository)


def host_vars(registry: str, image: dict) -> dict:
    """The facts of one tag as ``registry_image_*`` variables (JSON-friendly, cacheable)."""
    platforms = image.get("platforms") or []
    return {
        "registry_image_reference": f"{registry}/{image['repository']}:{image['tag']}",
        "registry_image_registry": registry,
        "registry_image_repository": image["repository"],
        "registry_image_tag": image["tag"],
        "registry_image_digest": image.get("digest"),
        "registry_image_media_type": image.get("media_type"),
        "registry_image_created": image.get("created"),
        "registry_image_created_source": image.get("created_source"),
        "registry_image_size": image.get("size"),
        "registry_image_platforms": platforms,
        "registry_image_architectures": sorted({p.get("architecture") for p in platforms if p.get("architecture")}),
        "registry_image_labels": image.get("labels") or {},
        "registry_image_annotations": image.get("annotations") or {},
        "registry_image_shared_tags": image.get("shared_tags") or [],
    }


def referenced_names(expression: str) -> frozenset | None:
    """Every name a compose or keyed_groups expression reads (None: it cannot be parsed here). Parsed with plain
    Jinja, which checks no filter name: only the names matter."""
    try:
        tree = jinja2.Environment().parse("{{ (%s) }}" % expression)
    except jinja2.TemplateSyntaxError:
        return None  # Ansible evaluates it and reports the error as it always does
    return frozenset(node.name for node in tree.find_all(jinja2.nodes.Name) if node.ctx == "load")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "regops.registry.registry"

    def __init__(self):
        super().__init__()
        self._expression_names: dict[str, frozenset | None] = {}
        self._expression_results: dict[tuple[str, str], object] = {}

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("registry.yml", "registry.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        hosts = None
        if use_cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                hosts = None
        if hosts is None:
            hosts = self._gather()
            if self.get_option("cache"):
                self._cache[cache_key] = hosts
        self._populate(hosts)

    def _gather(self) -> list[dict]:
        if not HAS_REQUESTS:
            raise AnsibleParserError("the regops.registry.registry inventory plugin needs the Python library 'requests'")
        from ansible_collections.regops.registry.plugins.module_utils.common import build_client
        from ansible_collections.regops.registry.plugins.module_utils.facts import FactsGatherer
        from ansible_collections.regops.registry.plugins.module_utils.tag_sort import sort_tags

        try:
            patterns = self.get_option("repositories") or [".*"]
            tag_filters = compile_regexes(self.get_option("tags"), "tags")
            limit = positive_int(self.get_option("tag_limit"), "tag_limit")
            workers = concurrency(self.get_option("concurrency"))
            client = build_client(self._connection_option, warn=self.display.warning)
            try:
                repositories, catalogued = self._repositories(client, patterns)
                gatherer = FactsGatherer(client, workers)
                hosts = []
                for repository in repositories:
                    try:
                        tags = client.list_tags(repository)
                    except RegistryError as exc:
                        # The catalog also lists repositories holding only blobs (layers pushed or mounted before
                        # any manifest): they have no tags. A repository named in the options must exist.
                        if exc.status == 404 and repository in catalogued:
                            continue
                        raise
                    tags = [t for t in tags if not tag_filters or any(p.search(t) for p in tag_filters)]
                    images = gatherer.tag_details(repository, tags)
                    if limit is not None:
                        created = {i["tag"]: i.get("created") for i in images}
                        keep = set(sort_tags([i["tag"] for i in images], "created", created=created, reverse=True)[:limit])
                        images = [i for i in images if i["tag"] in keep]
                    for image in images:
                        image["repository"] = repository
                        hosts.append(host_vars(client.location.canonical_host, image))
                return hosts
            finally:
                client.close()
        except (InvalidInput, AuthError, RegistryError) as exc:
            raise AnsibleParserError(f"regops.registry.registry inventory: {exc}") from None

    def _compose(self, template, variables, disable_lookups=...):
        """One compose or keyed_groups expression for one host, evaluated once per distinct value of the variables it
        reads: ansible-core 2.19 compiles an expression on every call (milliseconds), which at 20,000 tags was most of
        the inventory's time. ``arch`` keyed groups then cost one evaluation per architecture, an ``image_pin`` one
        per image. Expressions reading anything but host variables (lookups, now(), extra variables) are evaluated
        for every host, as before."""
        if template not in self._expression_names:
            self._expression_names[template] = referenced_names(template)
        names = self._expression_names[template]
        if names is None or not names <= variables.keys():
            return super()._compose(template, variables)
        key = (template, json.dumps([variables[n] for n in sorted(names)], sort_keys=True, default=repr))
        if key not in self._expression_results:
            self._expression_results[key] = super()._compose(template, variables)
        return copy.deepcopy(self._expression_results[key])

    def _connection_option(self, name: str):
        """An option as ``build_client`` reads it: templates in the string options rendered, with the extra
        variables (``-e``) available to them. The configuration file and extra variables are trusted sources."""
        value = self.get_option(name)
        if name in TEMPLATED_OPTIONS and isinstance(value, str) and self.templar.is_template(value):
            self.templar.available_variables = self._vars or {}
            value = self.templar.template(value)
        return value

    @staticmethod
    def _repositories(client, patterns: list[str]) -> tuple[list[str], set[str]]:
        """The repositories to read, and those of them only found through the catalog."""
        names = [p for p in patterns if PLAIN_NAME.match(p) and REPOSITORY_RE.match(p)]
        regexes = compile_regexes([p for p in patterns if p not in names], "repositories")
        for name in names:
            validate_repository(name)
        catalogued = set()
        if regexes:
            catalogued = {r for r in client.catalog() if any(p.fullmatch(r) for p in regexes)} - set(names)
        return sorted(set(names) | catalogued), catalogued

    def _populate(self, hosts: list[dict]) -> None:
        strict = self.get_option("strict")
        prefix = self.get_option("group_prefix")
        constructed = {option: self.get_option(option) for option in ("compose", "groups", "keyed_groups")}
        for variables in hosts:
            repository = variables["registry_image_repository"]
            name = host_name(repository, variables["registry_image_tag"])
            self.inventory.add_host(name, group=self.inventory.add_group(group_name(prefix, repository)))
            for key, value in variables.items():
                # ansible-core >= 2.19 (our floor) never templates strings it was not told to trust: registry data
                # (tags, labels) set here stays data. wrap_var would only add __ansible_unsafe noise to --list.
                self.inventory.set_variable(name, key, value)
            if any(constructed.values()):
                self._construct(name, constructed, strict)

    def _construct(self, name: str, constructed: dict, strict: bool) -> None:
        """compose, groups and keyed_groups: templates run per host, so only when configured. The host's variables
        are read once after compose (groups may use composed variables), not again for every keyed group."""
        host = self.inventory.get_host(name)
        if constructed["compose"]:
            self._set_composite_vars(constructed["compose"], host.get_vars(), name, strict=strict)
        all_vars = host.get_vars()
        self._add_host_to_composed_groups(constructed["groups"], all_vars, name, strict=strict, fetch_hostvars=False)
        self._add_host_to_keyed_groups(constructed["keyed_groups"], all_vars, name, strict=strict,
                                       fetch_hostvars=False)
