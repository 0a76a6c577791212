"""The usage report's filters and page (issue 18): charts present, exact numbers in tables, registry text escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.regops.registry.plugins.filter.usage import FilterModule
from tests.unit.plugins.module_utils.test_usage import NOW, facts, image

FILTERS = FilterModule().filters()
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict]]:
    parser = Elements()
    parser.feed(page)
    return parser.found


def summary(policy=None):
    return FILTERS["usage_summary"](facts(
        team_app=[image("1.0", "sha256:1", {"base": 5000, "a": 300}, labels={"org.opencontainers.image.title": HOSTILE}),
                  image("2.0", "sha256:2", {"base": 5000, "b": 700}, created="2024-09-01T00:00:00Z")],
        team_web=[image("latest", "sha256:3", {"base": 5000, "w": 90}, created="2023-01-01T00:00:00Z")]),
        policy=policy, now=NOW, registry="registry.example.com")


def test_the_page_has_every_chart_with_shapes_and_its_numbers():
    page = FILTERS["usage_html"](summary(policy={"keep_latest": 1}))
    found = elements(page)
    charts = [a["data-chart"] for tag, a in found if tag == "svg"]
    assert charts == ["storage", "age", "largest", "prune"]
    for chart in charts:  # each chart draws bars
        body = re.search(rf'data-chart="{chart}".*?</svg>', page, re.S).group(0)
        assert "<rect " in body
    assert "6,090" in page  # the exact total, in a table
    assert "garbage collection" in page


def test_without_a_policy_the_prune_section_says_so_and_draws_no_chart():
    page = FILTERS["usage_html"](summary())
    assert [a["data-chart"] for tag, a in elements(page) if tag == "svg"] == ["storage", "age", "largest"]
    assert "No retention policy was given" in page


def test_registry_text_never_becomes_markup():
    page = FILTERS["usage_html"](summary())
    tags = [tag for tag, _a in elements(page)]
    assert "script" not in tags and "img" not in tags
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_nothing_on_the_page_is_fetched_from_elsewhere():
    page = FILTERS["usage_html"](summary(policy={"keep_latest": 1}))
    for tag, attributes in elements(page):
        assert tag not in ("script", "link", "img", "iframe", "object")
        assert not any(k in ("src", "href") for k in attributes), (tag, attributes)
    assert "url(" not in page and "@import" not in page and "@font-face" not in page


def test_wrong_input_fails_with_a_sentence():
    with pytest.raises(AnsibleFilterError, match="usage_summary: .*blobs: true"):
        FILTERS["usage_summary"]({"repositories": [{"repository": "a", "images": [{"tag": "1", "digest": "d"}]}]})
    with pytest.raises(AnsibleFilterError, match="usage_summary"):
        FILTERS["usage_html"]({"total_bytes": 1})
    with pytest.raises(AnsibleFilterError, match="older_than"):
        FILTERS["usage_summary"](facts(a=[]), policy={"older_than": "soon"})


def test_a_chart_of_many_repositories_shows_the_largest_and_says_so():
    from ansible_collections.regops.registry.plugins.module_utils.usage_html import CHART_ROWS, bar_chart, human

    chart = bar_chart("storage", "Bytes", [(f"repo/{n}", [1000 * n, 0]) for n in range(CHART_ROWS + 5, 0, -1)])
    assert chart.count("<rect ") == CHART_ROWS and f"The {CHART_ROWS} largest of {CHART_ROWS + 5}" in chart
    assert [human(n) for n in (0, 1023, 1536, 5 * 2 ** 30)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]


def test_an_empty_registry_still_makes_a_page():
    numbers = FILTERS["usage_summary"]({"repositories": []}, now=NOW)
    assert numbers["total_bytes"] == 0 and numbers["repositories"] == [] and numbers["age"]["periods"] == []
    page = FILTERS["usage_html"](numbers)
    assert [a["data-chart"] for tag, a in elements(page) if tag == "svg"] == ["storage", "age", "largest"]
