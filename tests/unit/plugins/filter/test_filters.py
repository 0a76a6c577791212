"""Filters: reference parsing, semver sort, promotion summaries (pure)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.filter.promote import promote_summary, promote_targets
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


def test_promote_summary_of_a_registry_manifest_target_keeps_its_name():
    entry = {"target": "r.test/prod/app:1", "digest": "sha256:1", "changed": True, "blobs": [{"how": "uploaded"}],
             "manifests": [{"how": "written"}]}
    assert promote_summary(entry)["target"] == "r.test/prod/app:1"
    assert promote_summary(entry)["blobs"]["uploaded"] == 1


def test_promote_targets_gives_each_other_registry_its_own_entry_only():
    registries = {"src.test": {"username": "ci", "password": "s1"},
                  "dst.test:5000": {"registry": "http://dst.test:5000", "username": "deployer", "password": "s2",
                                    "timeout": 20, "not_an_option": 1}}
    targets = promote_targets(["src.test/prod/app:1", "dst.test:5000/prod/app:1", "third.test/app:x"], registries,
                              "src.test")
    assert targets == [
        {"repository": "prod/app", "tag": "1"},
        {"repository": "prod/app", "tag": "1", "registry": "http://dst.test:5000",
         "connection": {"validate_certs": True, "username": "deployer", "password": "s2", "timeout": 20}},
        {"repository": "app", "tag": "x", "registry": "third.test", "connection": {"validate_certs": True}}]
    off = promote_targets(["dst.test:5000/a:1"], {"dst.test:5000": {"validate_certs": False}}, "src.test")
    assert off[0]["connection"] == {"validate_certs": False}


@pytest.mark.parametrize("targets", [[], "src.test/a:1", ["src.test/a"], ["src.test/a:1@sha256:" + "a" * 64],
                                     ["src.test/A:1"]])
def test_promote_targets_refuses_what_is_not_a_list_of_tagged_references(targets):
    with pytest.raises(AnsibleFilterError, match="promote_targets"):
        promote_targets(targets, {}, "src.test")


def prune_plan(now="2024-03-01T00:00:00Z"):
    from ansible_collections.regops.registry.plugins.filter.prune import retention_plan

    images = [{"tag": t, "digest": "sha256:" + d * 64, "created": c, "size": 1}
              for t, d, c in (("old", "1", "2024-01-01T00:00:00Z"), ("old-b", "1", "2024-01-01T00:00:00Z"),
                              ("new", "2", "2024-02-01T00:00:00Z"))]
    return retention_plan(images, keep_latest=1, repository="a", now=now)


def test_retention_deletes_passes_what_the_plan_saw():
    from ansible_collections.regops.registry.plugins.filter.prune import retention_deletes

    deletes = retention_deletes(prune_plan())
    assert deletes["digests"] == ["sha256:" + "1" * 64] and deletes["protect_tags"] == ["new"]
    assert deletes["expected_tags"] == {"old": "sha256:" + "1" * 64, "old-b": "sha256:" + "1" * 64,
                                        "new": "sha256:" + "2" * 64}


def test_retention_report_keeps_the_previous_report_while_the_plan_is_the_same():
    import json

    from ansible_collections.regops.registry.plugins.filter.prune import retention_report

    def report(now, plan):
        return {"planned_at": now, "check_mode": False, "policy": plan["policy"], "repositories": [plan]}

    first = report("2024-03-01T00:00:00Z", prune_plan())
    text = json.dumps(first)
    later = report("2024-03-02T00:00:00Z", prune_plan(now="2024-03-02T00:00:00Z"))
    assert retention_report(later, text) == first  # same plan a day later: the report stays as it is, time included
    assert retention_report(later, None) == later and retention_report(later, "not json") == later
    changed = report("2024-03-02T00:00:00Z", prune_plan(now="2024-03-02T00:00:00Z"))
    changed["repositories"][0]["tags"][-1]["decision"] = "keep"
    assert retention_report(changed, text) == changed  # another plan: its own time
    assert retention_report(dict(later, check_mode=True), text)["planned_at"] == "2024-03-02T00:00:00Z"


def test_repository_selection_splits_names_from_patterns_and_refuses_typos():
    from ansible_collections.regops.registry.plugins.filter.prune import repository_selection

    assert repository_selection(["team/app", "^ci/", "a.b/c-d"]) == {"names": ["team/app", "a.b/c-d"], "patterns": ["^ci/"]}
    for bad, message in (([], "at least one"), ("team/app", "at least one"), (["My App"], "invalid repository name")):
        with pytest.raises(AnsibleFilterError, match=message):
            repository_selection(bad)
