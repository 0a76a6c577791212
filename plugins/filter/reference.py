# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure filters over image references and tags (no network)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_reference
from ansible_collections.regops.registry.plugins.module_utils.tag_sort import sort_tags


def parse_image_reference(value, default_tag="latest"):
    """``host/repo:tag@digest`` -> dict (registry, repository, tag, digest, reference, canonical)."""
    try:
        ref = parse_reference(str(value), default_tag=default_tag)
    except InvalidInput as exc:
        raise AnsibleFilterError(str(exc)) from None
    return {"registry": ref.registry, "repository": ref.repository, "tag": ref.tag, "digest": ref.digest,
            "reference": ref.reference, "canonical": str(ref)}


def semver_sort(tags, reverse=False):
    """Tags in semantic-version order; other tags first."""
    try:
        return sort_tags(list(tags), "semver", reverse=reverse)
    except InvalidInput as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"parse_reference": parse_image_reference, "semver_sort": semver_sort}
