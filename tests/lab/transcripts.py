"""What every run of a test session printed, and the secrets none of it may contain.

The integration runner records the output and results of every Ansible run; a lab records its registry's log
when it closes (the requests as we sent them: a secret in a URL would show there); the token server records every
token it issues. ``leaks()`` lists each place a secret or an ``Authorization`` value turned up, for the final test
of the session (tests/integration/test_zz_secrets.py).
"""

from __future__ import annotations

import base64
import re
import threading

_LOCK = threading.Lock()
TRANSCRIPTS: list[tuple[str, str]] = []  # (where, text)
SECRETS: set[str] = set()

# An Authorization header (or its JSON/repr form) with a value: never printed, whatever the value is.
AUTH_VALUE = re.compile(r"(?i)authorization[\"']?\s*[:=]\s*[\"']?(basic|bearer)\s+[A-Za-z0-9._~+/-]{8,}")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")


def add_user_secrets(users: dict[str, str]) -> None:
    """Passwords, and the base64 ``user:password`` a Basic header would carry."""
    with _LOCK:
        for user, password in users.items():
            SECRETS.add(password)
            SECRETS.add(base64.b64encode(f"{user}:{password}".encode()).decode())


def add_secret(value: str) -> None:
    if value:
        with _LOCK:
            SECRETS.add(value)


def record(where: str, text: str) -> None:
    with _LOCK:
        TRANSCRIPTS.append((where, text))


def leaks(transcripts=None, secrets=None) -> list[str]:
    """Every (place, what) where a secret, an Authorization value or a JWT appears."""
    with _LOCK:
        transcripts = list(TRANSCRIPTS if transcripts is None else transcripts)
        secrets = sorted(SECRETS if secrets is None else secrets)
    found = []
    for where, text in transcripts:
        found += [f"{where}: secret #{secrets.index(s)}" for s in secrets if s in text]
        if AUTH_VALUE.search(text):
            found.append(f"{where}: an Authorization value")
        if JWT.search(text):
            found.append(f"{where}: a JWT")
    return found
