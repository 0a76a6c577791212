# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tag report's rows, CSV, Markdown and printed table, built in one pass (pure).

One filter call instead of a ``set_fact`` and a ``debug`` per tag: a per-item Ansible loop templates every item and,
when it grows a list, copies it on every step (quadratic at 20,000 tags).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

FORMATS = ("rows", "csv", "markdown", "table")
COLUMNS = ("tag", "digest", "created", "media_type", "size", "platforms")


def _text(value) -> str:
    """As Jinja prints a value in a template (None as ``None``), so the files read as they always did."""
    return str(value)


def platforms_text(platforms) -> str:
    """``linux/amd64 linux/arm64/v8``: each platform's values joined by ``/``, platforms by a space."""
    return " ".join("/".join(_text(v) for v in platform.values()) for platform in platforms or [])


def row(image: dict) -> dict:
    return {"tag": image.get("tag"), "digest": image.get("digest"), "created": image.get("created"),
            "media_type": image.get("media_type"), "size": image.get("size"),
            "platforms": platforms_text(image.get("platforms"))}


def csv_text(rows: list[dict]) -> str:
    # Tags, digests, dates and media types hold no comma or quote: no quoting needed, none added.
    lines = [",".join(COLUMNS)] + [",".join(_text(r[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def markdown_text(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| tag | created | digest | size | platforms |", "|---|---|---|---|---|"]
    lines += [f"| {r['tag']} | {_text(r['created'])} | `{r['digest']}` | {_text(r['size'])} | {r['platforms']} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def table_lines(rows: list[dict]) -> list[str]:
    return ["%-24s %-28s %s" % (r["tag"], _text(r["created"]), r["digest"]) for r in rows]


def tag_rows(images, format="rows", title="Tags"):  # noqa: A002 - the option's name in playbooks
    """The report of ``images`` (registry_tags with details: its ``images``, or the whole result) in ``format``."""
    if isinstance(images, dict):
        images = images.get("images")
    if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
        raise AnsibleFilterError("tag_rows needs the images of registry_tags with details: true")
    if format not in FORMATS:
        raise AnsibleFilterError(f"tag_rows: format must be one of {', '.join(FORMATS)}, not {format!r}")
    rows = [row(image) for image in images]
    if format == "csv":
        return csv_text(rows)
    if format == "markdown":
        return markdown_text(rows, title)
    if format == "table":
        return table_lines(rows)
    return rows


class FilterModule:
    def filters(self):
        return {"tag_rows": tag_rows}
