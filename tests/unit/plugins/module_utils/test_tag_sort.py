"""tag_sort: every mode on the same input (EP-09), semver properties."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.tag_sort import semver_key, sort_tags

TAGS = ["1.10.0", "latest", "1.2.0", "v2.0.0", "1.2.0-rc.1", "1.2.0-alpha", "1.2.0-rc.10", "1.2.0-rc.2"]


def test_every_mode_on_the_same_input():
    assert sort_tags(TAGS, "none") == TAGS
    assert sort_tags(TAGS, "lexical") == sorted(TAGS)
    assert sort_tags(TAGS, "semver") == ["latest", "1.2.0-alpha", "1.2.0-rc.1", "1.2.0-rc.2", "1.2.0-rc.10", "1.2.0",
                                         "1.10.0", "v2.0.0"]
    created = {"1.10.0": "2024-03-01T00:00:00Z", "1.2.0": "2024-01-01T00:00:00Z", "latest": "2024-03-01T00:00:00Z"}
    assert sort_tags(["latest", "1.10.0", "1.2.0", "x"], "created", created=created) == ["x", "1.2.0", "1.10.0", "latest"]
    assert sort_tags(TAGS, "semver", reverse=True)[0] == "v2.0.0"
    with pytest.raises(InvalidInput):
        sort_tags(TAGS, "random")


versions = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30),
                     st.one_of(st.none(), st.sampled_from(["alpha", "beta.1", "rc.1", "rc.2", "1"])))


@given(st.lists(versions, min_size=1, max_size=20))
def test_semver_order_matches_numeric_order(items):
    tags = [f"{a}.{b}.{c}" + (f"-{pre}" if pre else "") for a, b, c, pre in items]
    ordered = sort_tags(tags, "semver")
    keys = [semver_key(t) for t in ordered]
    assert keys == sorted(keys)
    releases = [t for t in ordered if "-" not in t]
    assert [tuple(map(int, t.split("."))) for t in releases] == sorted(tuple(map(int, t.split("."))) for t in releases)
