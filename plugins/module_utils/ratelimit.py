# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker Hub's pull rate limit, read from its headers, and the decision whether the pulls a run plans still fit.
Pure: no I/O.

Docker Hub sends ``ratelimit-limit: 100;w=21600`` and ``ratelimit-remaining: 76;w=21600`` (``w`` = window in seconds)
and ``docker-ratelimit-source`` on manifest GET and HEAD; only a GET counts as a pull (protocol reference 5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LIMIT_HEADER = "ratelimit-limit"
REMAINING_HEADER = "ratelimit-remaining"
SOURCE_HEADER = "docker-ratelimit-source"

_QUOTA = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+)\s*)?(?:;.*)?$")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    window: int | None = None  # seconds
    source: str | None = None

    def as_dict(self) -> dict:
        out = {"limit": self.limit, "remaining": self.remaining, "window": self.window}
        if self.source:
            out["source"] = self.source
        return out


def parse_quota(value: str | None) -> tuple[int, int | None] | None:
    """``100;w=21600`` -> (100, 21600); ``100`` -> (100, None); anything else None."""
    match = _QUOTA.match(value or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


def parse_ratelimit(headers) -> RateLimit | None:
    """The rate limit a response announces (``headers``: a case-insensitive mapping), None when it announces none
    (Docker Hub sends none to unlimited accounts; other registries never do)."""
    limit = parse_quota(headers.get(LIMIT_HEADER))
    remaining = parse_quota(headers.get(REMAINING_HEADER))
    if limit is None or remaining is None:
        return None
    source = (headers.get(SOURCE_HEADER) or "").strip() or None
    return RateLimit(limit[0], remaining[0], remaining[1] or limit[1], source)


def pulls_refused(ratelimit: RateLimit | None, needed: int, reserve: int = 0) -> str | None:
    """Why ``needed`` more pulls must not be sent (None when they fit): the last ``remaining`` seen, less the
    ``reserve`` kept for others (``min_ratelimit_remaining``), is smaller than what is needed."""
    if ratelimit is None or needed <= 0:
        return None
    available = ratelimit.remaining - max(0, reserve)
    if needed <= available:
        return None
    window = f" per {ratelimit.window} s" if ratelimit.window else ""
    kept = f", {reserve} of them kept in reserve (min_ratelimit_remaining)" if reserve > 0 else ""
    pulls = "1 manifest pull is" if needed == 1 else f"{needed} manifest pulls are"
    return (f"the registry's pull rate limit would run out: {pulls} needed, "
            f"{ratelimit.remaining} of {ratelimit.limit}{window} remain{kept}; nothing more was sent "
            "(try again when the window has passed, authenticate, or ask for fewer tags)")
