# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of module inputs that the argument spec cannot express: runs before any request."""

from __future__ import annotations

import re

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput

MAX_CONCURRENCY = 64
# No registry pages by more than a few thousand (distribution caps at 1000); a larger number is a typo.
MAX_PAGE_SIZE = 10000


def compile_regex(pattern: str | None, option: str):
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInput(f"{option}: '{pattern}' is not a valid regular expression ({exc})") from None


def compile_regexes(patterns, option: str) -> list:
    return [compile_regex(p, option) for p in patterns or []]


def positive_int(value: int | None, option: str, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if value < 1:
        raise InvalidInput(f"{option} must be at least 1, not {value}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{option} must be at most {maximum}, not {value}")
    return value


def concurrency(value: int | None) -> int:
    return positive_int(value, "concurrency", MAX_CONCURRENCY) or 8


def page_size(value: int | None) -> int | None:
    return positive_int(value, "page_size", MAX_PAGE_SIZE)


def min_ratelimit_remaining(value: int | None) -> int:
    if value is not None and value < 0:
        raise InvalidInput(f"min_ratelimit_remaining must be zero or more, not {value}")
    return value or 0


def looks_like_host(component: str) -> bool:
    """Reference rule: a first path component is a registry host if it has '.', ':', is localhost or IPv6."""
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def split_source(source: str, default_host: str):
    """Parse a source given as ``repo[:tag|@digest]`` (this registry) or ``host/repo[:tag|@digest]``.

    Returns ``(host or None, ImageReference)``; ``host`` is None when the source is on this registry.
    Unlike ``docker pull``, a name without a host means *this* registry, not Docker Hub.
    """
    from ansible_collections.regops.registry.plugins.module_utils.reference import parse_reference

    if not source or source != source.strip():
        raise InvalidInput(f"invalid source '{source}'")
    first, sep, _rest = source.partition("/")
    if sep and looks_like_host(first):
        ref = parse_reference(source, default_tag=None)
        host = first.lower()
        return (None if host == default_host.lower() else host), ref
    return None, parse_reference(f"{default_host}/{source}", default_tag=None)


def resolve_source(source: str, repository: str, default_host: str) -> tuple[str | None, str, str]:
    """``(host or None, repository, tag-or-digest)`` of a manifest source.

    A bare tag or digest names ``repository`` itself; anything else goes through ``split_source``.
    """
    from ansible_collections.regops.registry.plugins.module_utils.reference import is_digest, validate_tag

    if "/" not in source:
        if is_digest(source):
            return None, repository, source
        try:
            return None, repository, validate_tag(source)
        except InvalidInput:
            pass
    host, ref = split_source(source, default_host)
    return host, ref.repository, ref.digest or ref.tag or "latest"
