# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tag ordering: registries return tags in no reliable order, so the client always sorts. Pure."""

from __future__ import annotations

import re

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput

SORT_MODES = ("none", "lexical", "semver", "created")
SEMVER_RE = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$")


def semver_key(tag: str) -> tuple:
    """Sort key: non-semver tags first (by name), then versions in semver 2.0.0 precedence.

    ``1.2`` is read as ``1.2.0``; a leading ``v`` is allowed; build metadata is ignored except as the
    last tie-breaker (so the order stays total).
    """
    match = SEMVER_RE.match(tag)
    if not match:
        return (0, tag)
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    if pre is None:
        pre_key: tuple = (1,)  # a release sorts after all its pre-releases
    else:
        pre_key = (0,) + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (1, int(major), int(minor), int(patch or 0), pre_key, tag)


def sort_tags(tags: list[str], mode: str = "lexical", created: dict | None = None, reverse: bool = False) -> list[str]:
    """Order tags; ``created`` (tag -> ISO date or None) for mode ``created``: undated first, ties by name."""
    if mode not in SORT_MODES:
        raise InvalidInput(f"sort must be one of {', '.join(SORT_MODES)}, not '{mode}'")
    tags = list(tags)
    if mode == "none":
        return list(reversed(tags)) if reverse else tags
    if mode == "lexical":
        return sorted(tags, reverse=reverse)
    if mode == "semver":
        return sorted(tags, key=semver_key, reverse=reverse)
    from ansible_collections.regops.registry.plugins.module_utils.images import parse_created

    created = created or {}

    def key(tag: str) -> tuple:
        moment = parse_created(created.get(tag))
        return (0, "", tag) if moment is None else (1, moment.isoformat(), tag)

    return sorted(tags, key=key, reverse=reverse)
