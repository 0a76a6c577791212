"""The inventory plugin's hosts, groups and constructed variables at many tags, without a registry: compose and
keyed_groups expressions run once per distinct value of what they read, not once per tag."""

from __future__ import annotations

from unittest import mock

import pytest
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import Constructable
from ansible.template import Templar, trust_as_template

from ansible_collections.regops.registry.plugins.inventory.registry import InventoryModule, host_vars, referenced_names

IMAGES, TAGS_PER_IMAGE = 20, 10


def images() -> list[dict]:
    return [{"repository": "team/app", "tag": f"build-{n}", "digest": f"sha256:{n // TAGS_PER_IMAGE:064x}",
             "media_type": "application/vnd.oci.image.manifest.v1+json", "created": "2024-01-01T00:00:00Z",
             "size": 10, "labels": {"build": str(n // TAGS_PER_IMAGE)},
             "platforms": [{"os": "linux", "architecture": "arm64" if n % 2 else "amd64"}]}
            for n in range(IMAGES * TAGS_PER_IMAGE)]


def populated(**options):
    """The plugin after making its hosts, and how many expressions Ansible evaluated for it."""
    plugin = InventoryModule()
    # the options _populate and Constructable read, as a configuration file would set them
    plugin._options = {"strict": True, "group_prefix": "repo_", "compose": {}, "groups": {}, "keyed_groups": [],
                       "use_extra_vars": False, "leading_separator": True,
                       **{key: _trust(value) for key, value in options.items()}}
    plugin.inventory, plugin.loader = InventoryData(), DataLoader()
    plugin.templar, plugin._vars = Templar(loader=plugin.loader), {}
    evaluate = Constructable._compose
    with mock.patch.object(Constructable, "_compose", autospec=True, side_effect=evaluate) as evaluated:
        plugin._populate([host_vars("r.example.com", image) for image in images()])
    return plugin, evaluated.call_count


def _trust(value):
    """Options from a configuration file are trusted templates; here they come from a dict."""
    if isinstance(value, dict):
        return {k: trust_as_template(v) if k in ("key", "image_pin", "tag_ref") else v for k, v in value.items()}
    if isinstance(value, list):
        return [_trust(v) for v in value]
    return value


def test_keyed_groups_and_compose_are_evaluated_once_per_distinct_input():
    plugin, evaluations = populated(
        keyed_groups=[{"key": "registry_image_architectures", "prefix": "arch"},
                      {"key": "registry_image_labels['build'] | default('none')", "prefix": "build"}],
        compose={"image_pin": "registry_image_repository ~ '@' ~ registry_image_digest",
                 "tag_ref": "registry_image_repository ~ ':' ~ registry_image_tag"})
    hosts = plugin.inventory.hosts
    assert len(hosts) == IMAGES * TAGS_PER_IMAGE
    # image_pin: one per image; tag_ref: one per tag; arch: one per architecture list; build: one per image
    assert evaluations == IMAGES + IMAGES * TAGS_PER_IMAGE + 2 + IMAGES
    assert hosts["team/app@build-13"].vars["image_pin"] == f"team/app@sha256:{1:064x}"
    assert hosts["team/app@build-13"].vars["tag_ref"] == "team/app:build-13"
    groups = plugin.inventory.groups
    assert {h.name for h in groups["arch_arm64"].hosts} == {f"team/app@build-{n}" for n in range(1, 200, 2)}
    assert {h.name for h in groups["build_3"].hosts} == {f"team/app@build-{n}" for n in range(30, 40)}


def test_without_constructed_options_no_expression_is_evaluated():
    plugin, evaluations = populated()
    assert evaluations == 0 and len(plugin.inventory.hosts) == IMAGES * TAGS_PER_IMAGE
    assert set(plugin.inventory.groups) == {"all", "ungrouped", "repo_team_app"}


@pytest.mark.parametrize("expression, names", [
    ("registry_image_labels['x'] | default('none')", {"registry_image_labels"}),
    ("a ~ b.c ~ lookup('env', 'HOME')", {"a", "b", "lookup"}),
    ("(unbalanced", None),
])
def test_referenced_names(expression, names):
    assert referenced_names(expression) == (frozenset(names) if names is not None else None)
