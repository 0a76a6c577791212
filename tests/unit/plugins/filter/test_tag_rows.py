"""tag_rows: the tag report's rows, CSV, Markdown and table from registry_tags images, in one call (pure)."""

from __future__ import annotations

import csv
import io

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.filter.tag_report import tag_rows

INDEX = {"tag": "v2", "digest": "sha256:" + "a" * 64, "created": "2024-06-01T00:00:00Z",
         "media_type": "application/vnd.oci.image.index.v1+json", "size": 5887, "labels": {"x": "y"},
         "platforms": [{"os": "linux", "architecture": "amd64"},
                       {"os": "linux", "architecture": "arm64", "variant": "v8"}]}
UNDATED = {"tag": "nodate", "digest": "sha256:" + "b" * 64, "created": None,
           "media_type": "application/vnd.docker.distribution.manifest.v2+json", "size": 12, "platforms": []}


def test_rows_keep_the_order_and_only_the_report_columns():
    assert tag_rows([UNDATED, INDEX]) == [
        {"tag": "nodate", "digest": UNDATED["digest"], "created": None, "media_type": UNDATED["media_type"],
         "size": 12, "platforms": ""},
        {"tag": "v2", "digest": INDEX["digest"], "created": "2024-06-01T00:00:00Z", "media_type": INDEX["media_type"],
         "size": 5887, "platforms": "linux/amd64 linux/arm64/v8"}]
    assert tag_rows({"images": [INDEX], "changed": False}) == tag_rows([INDEX])  # the whole registry_tags result


def test_csv_reads_back_with_a_header():
    text = tag_rows([INDEX, UNDATED], format="csv")
    assert text.endswith("\n") and text.splitlines()[0] == "tag,digest,created,media_type,size,platforms"
    read = list(csv.DictReader(io.StringIO(text)))
    assert [(r["tag"], r["digest"], r["size"], r["platforms"]) for r in read] == [
        ("v2", INDEX["digest"], "5887", "linux/amd64 linux/arm64/v8"), ("nodate", UNDATED["digest"], "12", "")]


def test_markdown_has_the_title_and_one_table_line_per_tag():
    lines = tag_rows([INDEX, UNDATED], format="markdown", title="Tags of team/app").splitlines()
    assert lines[:4] == ["# Tags of team/app", "", "| tag | created | digest | size | platforms |", "|---|---|---|---|---|"]
    assert lines[4] == f"| v2 | 2024-06-01T00:00:00Z | `{INDEX['digest']}` | 5887 | linux/amd64 linux/arm64/v8 |"
    assert len(lines) == 6


def test_table_lines_align_tag_and_date():
    assert tag_rows([INDEX], format="table") == [f"{'v2':<24} {'2024-06-01T00:00:00Z':<28} {INDEX['digest']}"]


def test_twenty_thousand_tags_in_one_call():
    images = [dict(INDEX, tag=f"build-{n}") for n in range(20_000)]
    assert len(tag_rows(images, format="csv").splitlines()) == 20_001


@pytest.mark.parametrize("bad, message", [("nope", "needs the images"), ([1], "needs the images")])
def test_wrong_input_is_a_filter_error(bad, message):
    with pytest.raises(AnsibleFilterError, match=message):
        tag_rows(bad)


def test_unknown_format_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="format must be one of"):
        tag_rows([INDEX], format="xml")
