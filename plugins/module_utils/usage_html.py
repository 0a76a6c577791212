# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The usage report as one self-contained HTML page: inline SVG charts, each with a table of its exact numbers.

Written in Python rather than as a Jinja2 template: Ansible's templating does not escape HTML, so in a template every
tag, label and repository name would need its own ``| e`` and one forgotten would let a label write markup into the
page. Here every registry-supplied string goes through ``text()`` and the charts are plain functions a unit test calls.
No script, no font, no stylesheet or image from elsewhere: nothing leaves the page when it is opened.
"""

from __future__ import annotations

from html import escape

WIDTH = 760
LABEL_WIDTH = 230
BAR_WIDTH = 400
ROW = 22
CHART_ROWS = 15  # more repositories or images than this are in the table below the chart only
COLORS = ("#2b6cb0", "#90cdf4", "#c05621", "#d69e2e")
STYLE = """
body{font-family:sans-serif;margin:2em auto;max-width:60em;color:#1a202c;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #cbd5e0}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
td,th{border:1px solid #cbd5e0;padding:.2em .5em;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.85em;word-break:break-all}
svg.chart{display:block;max-width:100%;height:auto}
svg text{font-family:sans-serif;font-size:12px;fill:#1a202c}
.key span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em;vertical-align:middle}
.summary td{font-size:1.1em}.note{color:#4a5568}
@media print{body{margin:0;max-width:none}section{break-inside:avoid-page}
h2{break-after:avoid}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def text(value) -> str:
    """Every value that reaches the page, escaped: tags, labels and names come from the registry."""
    return escape("" if value is None else str(value), quote=True)


def human(size: int | None) -> str:
    """1536 -> '1.5 KiB': for chart labels; the tables give the exact bytes."""
    if size is None:
        return "unknown"
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def exact(number) -> str:
    return "" if number is None else f"{number:,}"


def table(headers: list[str], rows: list[list], numeric=()) -> str:
    """A table; columns whose index is in ``numeric`` are right-aligned. Cells are escaped unless already markup
    (``Markup`` values made here)."""
    def cell(tag: str, index: int, value) -> str:
        klass = ' class="n"' if index in numeric else ""
        return f"<{tag}{klass}>{value if isinstance(value, Markup) else text(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup(str):
    """HTML made here from escaped parts: a table cell takes it as it is."""


def code(value) -> Markup:
    return Markup(f"<code>{text(value)}</code>")


def key(names: list[str]) -> str:
    return '<p class="key">' + "".join(f'<span style="background:{COLORS[i]}"></span>{text(n)}'
                                       for i, n in enumerate(names)) + "</p>"


def bar_chart(name: str, title: str, rows: list[tuple[str, list[int]]]) -> str:
    """Horizontal bars, one row per label, each bar the segments stacked (``COLORS`` in order), the total after it."""
    shown = rows[:CHART_ROWS]
    largest = max([sum(values) for _label, values in shown] + [1])
    height = ROW * len(shown) + 10
    parts = [f'<svg class="chart" data-chart="{name}" role="img" '
             f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"><title>{text(title)}</title>']
    for row, (label, values) in enumerate(shown):
        y = 5 + row * ROW
        short = label if len(label) <= 32 else label[:15] + "…" + label[-15:]
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{text(short)}</text>')
        x = float(LABEL_WIDTH)
        for index, value in enumerate(values):
            width = BAR_WIDTH * value / largest
            if width > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{max(width, 1):.1f}" height="{ROW - 6}" '
                             f'fill="{COLORS[index]}"><title>{text(label)}: {exact(value)} bytes</title></rect>')
            x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{text(human(sum(values)))}</text>')
    more = f'<p class="note">The {len(shown)} largest of {len(rows)}; every one is in the table.</p>' \
        if len(rows) > len(shown) else ""
    return "".join(parts) + "</svg>" + more


def column_chart(name: str, title: str, periods: list[dict], series: list[str]) -> str:
    """Vertical columns, one group per period, one column per series (tags, images), side by side."""
    plot_height, left, bottom = 180, 40, 40
    slot = max(4.0, min(48.0, (WIDTH - left - 10) / max(1, len(periods))))
    largest = max([p[s] for p in periods for s in series] + [1])
    height = plot_height + bottom + 10
    parts = [f'<svg class="chart" data-chart="{name}" role="img" '
             f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"><title>{text(title)}</title>',
             f'<line x1="{left}" y1="{plot_height + 10}" x2="{WIDTH - 10}" y2="{plot_height + 10}" stroke="#718096"/>',
             f'<text x="{left - 4}" y="18" text-anchor="end">{exact(largest)}</text>']
    every = max(1, int(len(periods) * 60 / (WIDTH - left)) + 1)  # period labels that fit, ~60 px each
    for index, period in enumerate(periods):
        x = left + index * slot
        width = max(1.0, (slot - 2) / len(series))
        for s, serie in enumerate(series):
            value = period[serie]
            if value:
                h = plot_height * value / largest
                parts.append(f'<rect x="{x + 1 + s * width:.1f}" y="{plot_height + 10 - h:.1f}" width="{width:.1f}" '
                             f'height="{h:.1f}" fill="{COLORS[s]}"><title>{text(period["period"])}: '
                             f'{exact(value)} {text(serie)}</title></rect>')
        if index % every == 0:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{plot_height + 26}" text-anchor="middle">'
                         f'{text(period["period"])}</text>')
    return "".join(parts) + "</svg>"


def storage_section(summary: dict) -> str:
    repositories = summary["repositories"]
    rows = [(r["repository"], [r["bytes"] - r["shared_bytes"], r["shared_bytes"]]) for r in repositories]
    return ("<section><h2>Storage per repository</h2>"
            f"<p>Every blob (layers and configs) counted once per repository; over the whole report each blob once: "
            f"<strong>{text(human(summary['total_bytes']))}</strong> ({exact(summary['total_bytes'])} bytes in "
            f"{exact(summary['blobs'])} blobs). Shared bytes are blobs that another repository of the report "
            f"references too: the registry stores them once.</p>"
            + key(["only this repository", "shared with another repository"])
            + bar_chart("storage", "Bytes per repository", rows)
            + table(["repository", "tags", "images", "blobs", "bytes", "shared bytes"],
                    [[r["repository"], exact(r["tags"]), exact(r["images"]), exact(r["blobs"]), exact(r["bytes"]),
                      exact(r["shared_bytes"])] for r in repositories], numeric=(1, 2, 3, 4, 5))
            + "</section>")


def age_section(summary: dict) -> str:
    age, stale, oldest = summary["age"], summary["stale_tags"], summary["oldest_images"]
    undated = age["undated"]
    parts = ["<section><h2>Tags and images by age</h2>",
             f"<p>By the {text(age['unit'])} their image was created. Without a date: {exact(undated['tags'])} tags, "
             f"{exact(undated['images'])} images.</p>", key(["tags", "images"]),
             column_chart("age", f"Tags and images by {age['unit']} created", age["periods"], ["tags", "images"]),
             table([age["unit"], "tags", "images"],
                   [[p["period"], exact(p["tags"]), exact(p["images"])] for p in age["periods"]], numeric=(1, 2)),
             "<h3>Oldest images</h3>",
             table(["created", "digest", "size (bytes)", "what", "where"],
                   [[i["created"], code(i["digest"]), exact(i["size"]), i["source"] or "", where(i)] for i in oldest],
                   numeric=(2,)),
             f"<h3>Tags whose image is older than {exact(stale['older_than'] // 86400)} days</h3>",
             f"<p>{exact(stale['count'])} tags point at images created before {text(stale['before'])}.</p>",
             table(["repository", "stale tags"], [[r["repository"], exact(r["tags"])] for r in stale["repositories"]],
                   numeric=(1,)),
             table(["created", "repository", "tag", "digest"],
                   [[t["created"], t["repository"], t["tag"], code(t["digest"])] for t in stale["oldest"]]),
             "</section>"]
    return "".join(parts)


def where(image: dict) -> Markup:
    """Repositories and tags holding an image: ``team/app: 1.0, latest``."""
    return Markup("<br>".join(f"{text(r['repository'])}: {text(', '.join(r['tags'][:5]))}"
                              + (f" and {len(r['tags']) - 5} more" if len(r["tags"]) > 5 else "")
                              for r in image["repositories"]))


def largest_section(summary: dict) -> str:
    images = summary["largest_images"]
    rows = [((i["repositories"][0]["repository"] + ":" + i["repositories"][0]["tags"][0]) if i["repositories"]
             else i["digest"], [i["size"]]) for i in images]
    return ("<section><h2>Largest images</h2><p>An image's size is that of its distinct blobs (for a multi-platform "
            "index, every platform's); it shares some of them with other images.</p>"
            + bar_chart("largest", "Largest images", rows)
            + table(["size (bytes)", "digest", "created", "what", "where"],
                    [[exact(i["size"]), code(i["digest"]), i["created"], i["source"] or "", where(i)] for i in images],
                    numeric=(0,))
            + "</section>")


def prune_section(summary: dict) -> str:
    prune = summary["prune"]
    if prune is None:
        return ("<section><h2>What a prune would free</h2><p class=\"note\">No retention policy was given "
                "(prune_keep_latest, prune_keep_tags, prune_match_tags or prune_older_than).</p></section>")
    policy = "; ".join(f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in prune["policy"].items()
                       if v not in (None, [], "") and k != "now")
    rows = [(r["repository"], [r["frees_bytes"]]) for r in prune["repositories"]]
    return ("<section><h2>What a prune would free</h2>"
            f"<p>With the policy {text(policy)}: {exact(prune['tags_deleted'])} of {exact(prune['tags'])} tags "
            f"deleted, {exact(prune['digests_deleted'])} manifests deleted by digest. Blobs that no kept image "
            f"references any more: <strong>{text(human(prune['frees_bytes']))}</strong> "
            f"({exact(prune['frees_bytes'])} bytes in {exact(prune['frees_blobs'])} blobs); "
            f"{exact(prune['keeps_bytes'])} bytes stay.</p><p class=\"note\">{text(prune['note'])}</p>"
            + bar_chart("prune", "Bytes a prune would free per repository", rows)
            + table(["repository", "tags", "tags deleted", "manifests deleted", "frees (bytes)"],
                    [[r["repository"], exact(r["tags"]), exact(r["tags_deleted"]), exact(r["digests_deleted"]),
                      exact(r["frees_bytes"])] for r in prune["repositories"]], numeric=(1, 2, 3, 4))
            + "<p class=\"note\">A blob that several repositories would all stop referencing counts in each row, and "
              "once in the total.</p></section>")


def usage_html(summary: dict, title: str | None = None) -> str:
    """The page of a ``usage.usage_summary`` result."""
    heading = title or ("Registry usage" + (f": {summary['registry']}" if summary.get("registry") else ""))
    overview = table(["total bytes", "blobs", "repositories", "tags", "images"],
                     [[f"{exact(summary['total_bytes'])} ({human(summary['total_bytes'])})", exact(summary["blobs"]),
                       exact(len(summary["repositories"])), exact(summary["tags"]), exact(summary["images"])]])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{text(heading)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{text(heading)}</h1>"
            f"<p class=\"note\">Generated {text(summary['generated_at'])} by regops.registry.usage_report. Sizes are "
            "exact, from the manifests; manifests themselves are not counted.</p><div class=\"summary\">"
            + overview + "</div>" + storage_section(summary) + age_section(summary) + largest_section(summary)
            + prune_section(summary) + "</body></html>\n")
