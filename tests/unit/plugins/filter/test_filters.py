"""Filters: reference parsing, semver sort, promotion summaries (pure)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.filter.promote import promote_summary
from ansible_collections.regops.registry.plugins.filter.reference import parse_image_reference, semver_sort


def test_parse_reference_filter():
    assert parse_image_reference("localhost:5000/a/b:t") == {
        "registry": "localhost:5000", "repository": "a/b", "tag": "t", "digest": None, "reference": "t",
        "canonical": "localhost:5000/a/b:t"}
    assert parse_image_reference("r.example.com/app", default_tag=None)["tag"] is None
    with pytest.raises(AnsibleFilterError, match="lowercase"):
        parse_image_reference("r.example.com/App")


def test_semver_sort_filter():
    assert semver_sort(["1.10.0", "1.9.0", "latest"], reverse=True) == ["1.10.0", "1.9.0", "latest"]


def test_promote_summary_counts_blob_outcomes():
    result = {"item": {"canonical": "r/x:1"}, "digest": "sha256:1", "previous_digest": None, "changed": True,
              "blobs": [{"how": "mounted"}, {"how": "mounted"}, {"how": "exists"}],
              "manifests": [{"how": "exists"}, {"how": "written"}]}
    assert promote_summary(result) == {"target": "r/x:1", "digest": "sha256:1", "previous_digest": None, "changed": True,
                                       "blobs": {"mounted": 2, "uploaded": 0, "exists": 1}, "manifests_written": 1}


def test_promote_summary_of_a_playbooks_own_loop_names_the_target_from_the_task_arguments():
    result = {"item": "1.4", "digest": "sha256:1", "changed": False, "blobs": [], "manifests": [],
              "invocation": {"module_args": {"registry": "https://registry.example.com/", "repository": "prod/app",
                                             "tag": "1.4"}}}
    summary = promote_summary(result)
    assert summary["target"] == "registry.example.com/prod/app:1.4" and summary["blobs"]["mounted"] == 0
    assert promote_summary({"item": "1.4"})["target"] == "1.4"  # no arguments registered (no_log): the item itself
