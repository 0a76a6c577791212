# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Semantic version ranges such as ``>=1.2 <2`` or ``>=1.4 <1.5 || >=2.0.0-rc.1``. Pure.

Comparators separated by spaces must all hold; alternatives are separated by ``||``. A version may have a leading
``v``; a bound may leave out its patch or minor (``1.2`` is ``1.2.0``, ``<2`` is ``<2.0.0``). As semver ranges do, a pre-release tag is selected only by an
alternative that names a pre-release of the same major.minor.patch: ``>=1.2 <2`` never selects ``1.5.0-rc.1``.
"""

from __future__ import annotations

import re

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.tag_sort import SEMVER_RE

_COMPARATOR = re.compile(r"^(>=|<=|>|<|=)?(.+)$")
_OPERATORS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    "=": lambda a, b: a == b,
}


def version_key(tag: str) -> tuple | None:
    """(major, minor, patch, pre-release key) of a semver tag (build metadata ignored), None when not semver."""
    match = SEMVER_RE.match(tag)
    if not match:
        return None
    pre = match.group(4)
    # A release ranks after its pre-releases; numeric identifiers rank before alphanumeric ones.
    pre_key = (1,) if pre is None else (0,) + tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                                                    for p in pre.split("."))
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0), pre_key)


def is_prerelease(key: tuple) -> bool:
    return key[3] != (1,)


class SemverRange:
    """A parsed range: ``matches(tag)`` tells whether a tag is a version inside it."""

    def __init__(self, text: str, alternatives: list[list[tuple[str, tuple]]]) -> None:
        self.text = text
        self.alternatives = alternatives

    def matches(self, tag: str) -> bool:
        key = version_key(tag)
        if key is None:
            return False
        return any(self._holds(comparators, key) for comparators in self.alternatives)

    @staticmethod
    def _holds(comparators: list[tuple[str, tuple]], key: tuple) -> bool:
        if not all(_OPERATORS[op](key, bound) for op, bound in comparators):
            return False
        if is_prerelease(key):
            return any(is_prerelease(bound) and bound[:3] == key[:3] for _op, bound in comparators)
        return True


def bound_text(version: str) -> str:
    """A bound may name a major version only: ``<2`` is ``<2.0.0``."""
    return version + ".0" if re.fullmatch(r"v?\d+", version) else version


def parse_range(text: str, option: str = "semver") -> SemverRange:
    """Parse a range; InvalidInput naming the part that is not a comparator."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{option}: an empty range; give comparators such as '>=1.2 <2'")
    alternatives = []
    for part in text.split("||"):
        comparators = []
        for word in part.split():
            match = _COMPARATOR.match(word)
            bound = version_key(bound_text(match.group(2))) if match else None
            if bound is None:
                raise InvalidInput(f"{option}: '{text}' is not a semver range: '{word}' is not a comparator "
                                   "(an operator >=, >, <=, < or = and a version such as 1.2 or v1.2.3)")
            comparators.append((match.group(1) or "=", bound))
        if not comparators:
            raise InvalidInput(f"{option}: '{text}' is not a semver range: an empty alternative around '||'")
        alternatives.append(comparators)
    return SemverRange(text, alternatives)
