#!/usr/bin/python
# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_catalog
short_description: List the repositories of a registry
version_added: 0.1.0
description:
  - Lists the repositories of a Docker Registry HTTP API V2 / OCI distribution registry through C(/v2/_catalog),
    following C(Link) pagination to the end.
  - Many hosted registries (Docker Hub, GHCR, GitLab) do not offer the catalog; the module then fails with a sentence
    saying so.
author:
  - regops.registry contributors (@regops)
options:
  filter:
    description:
      - A Python regular expression; only repositories it matches (C(re.search)) are returned.
    type: str
  page_size:
    description:
      - Entries requested per page (C(n)). Registries cap it (distribution at 1000); when the registry refuses
        the number, the module retries once with the registry's default and warns.
      - At most 10000.
    type: int
extends_documentation_fragment:
  - regops.registry.connection
  - regops.registry.attributes
  - regops.registry.attributes.CHECK_MODE_READ_ONLY
"""

EXAMPLES = r"""
- name: List every repository
  regops.registry.registry_catalog:
    registry: registry.example.com
    username: ci
    password: "{{ registry_password }}"
  register: catalog

- name: Only the team's repositories, 500 per page
  regops.registry.registry_catalog:
    registry: https://registry.example.com
    filter: "^team-a/"
    page_size: 500
"""

RETURN = r"""
repositories:
  description: Repository names, sorted and deduplicated.
  returned: success
  type: list
  elements: str
  sample: [team-a/api, team-a/web]
count:
  description: Number of repositories returned.
  returned: success
  type: int
  sample: 2
"""

from ansible_collections.regops.registry.plugins.module_utils.common import RegistryModule
from ansible_collections.regops.registry.plugins.module_utils.options import compile_regex, page_size as page_size_option


def main() -> None:
    rm = RegistryModule({
        "filter": {"type": "str"},
        "page_size": {"type": "int"},
    })

    def body() -> dict:
        pattern = compile_regex(rm.params["filter"], "filter")
        page_size = page_size_option(rm.params["page_size"])
        repositories = rm.client.catalog(page_size=page_size)
        if pattern is not None:
            repositories = [r for r in repositories if pattern.search(r)]
        return {"changed": False, "repositories": repositories, "count": len(repositories)}

    rm.run(body)


if __name__ == "__main__":
    main()
