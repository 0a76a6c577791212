# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's exceptions: one for bad input, one for everything a registry answers."""

from __future__ import annotations

import json
from typing import Any


class InvalidInput(ValueError):
    """Bad user input, detected before any request is sent."""


# Registry error codes (distribution spec and the vendor codes met in practice) in words.
CODE_SENTENCES = {
    "BLOB_UNKNOWN": "the blob is not in this repository",
    "BLOB_UPLOAD_INVALID": "the upload session is broken or stale",
    "BLOB_UPLOAD_UNKNOWN": "the upload session is unknown, cancelled or expired",
    "DIGEST_INVALID": "the digest is invalid or does not match the content",
    "MANIFEST_BLOB_UNKNOWN": "the manifest references a blob or manifest that is not in this repository",
    "MANIFEST_INVALID": "the registry rejected the manifest as invalid",
    "MANIFEST_UNKNOWN": "the manifest (tag or digest) does not exist",
    "MANIFEST_UNVERIFIED": "the schema 1 manifest signature could not be verified",
    "NAME_INVALID": "the repository name is invalid",
    "NAME_UNKNOWN": "the repository does not exist",
    "PAGINATION_NUMBER_INVALID": "the page size is not accepted by the registry",
    "RANGE_INVALID": "the upload range is out of order",
    "SIZE_INVALID": "the content length does not match the data",
    "TAG_INVALID": "the tag was refused (the tag may be immutable)",
    "UNAUTHORIZED": "authentication is required",
    "DENIED": "access to the resource is denied",
    "UNSUPPORTED": "the operation is not supported by this registry (deletes may be disabled)",
    "TOOMANYREQUESTS": "too many requests: the registry is rate limiting",
    "UNKNOWN": "the registry reported an unknown error",
    "UNAVAILABLE": "the registry is unavailable",
    "TAG_EXPIRED": "the tag has expired",
    "TAG_ALREADY_EXISTS": "the tag already exists and is immutable",
    "INVALID_REQUEST": "the registry rejected the request",
    "GOOGLE_MANIFEST_DANGLING_TAG": "the manifest is still tagged: delete its tags first",
}

MAX_ERROR_BODY = 1 << 20


class RegistryError(Exception):
    """A registry (or the way to it) refused or failed an operation.

    Carries what a user needs to act: the operation in words, method, redacted URL, HTTP status and
    the registry's error codes. Never carries a credential: callers pass redacted URLs only.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: str | None = None,
    ) -> None:
        self.message = message
        self.operation = operation
        self.method = method
        self.url = url
        self.status = status
        self.errors = errors or []
        self.body = body
        super().__init__(self.__str__())

    @property
    def codes(self) -> list[str]:
        return [e.get("code", "UNKNOWN") for e in self.errors]

    def has_code(self, *codes: str) -> bool:
        return any(code in codes for code in self.codes)

    def __str__(self) -> str:
        parts = []
        if self.operation:
            parts.append(f"{self.operation} failed: ")
        parts.append(self.message)
        if self.method and self.url:
            parts.append(f" ({self.method} {self.url}")
            parts.append(f" -> HTTP {self.status})" if self.status is not None else ")")
        return "".join(parts)

    def as_result(self) -> dict[str, Any]:
        """Extra keys for fail_json: machine-readable details."""
        return {
            "status": self.status,
            "url": self.url,
            "method": self.method,
            "registry_errors": self.errors,
        }


def parse_error_body(text: str | None) -> list[dict[str, Any]]:
    """Read the registry's error envelope; tolerate empty, text, HTML and vendor shapes (ER-01)."""
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    raw = data.get("errors")
    if not isinstance(raw, list):
        return []
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        code = entry.get("code")
        item: dict[str, Any] = {"code": code.upper() if isinstance(code, str) and code else "UNKNOWN"}
        if code and isinstance(code, str) and code.upper() not in CODE_SENTENCES:
            item["raw_code"] = code
            item["code"] = "UNKNOWN"
        if entry.get("message") is not None:
            item["message"] = str(entry.get("message"))
        if "detail" in entry:
            item["detail"] = entry["detail"]
        out.append(item)
    return out


def describe_errors(errors: list[dict[str, Any]], status: int | None, body: str | None = None) -> str:
    """One readable sentence from the registry's errors (or the status when there are none)."""
    if errors:
        texts = []
        for err in errors:
            code = err.get("raw_code") or err.get("code", "UNKNOWN")
            sentence = CODE_SENTENCES.get(err.get("code", "UNKNOWN"), "")
            msg = err.get("message")
            text = f"{code}"
            if sentence:
                text += f": {sentence}"
            if msg and msg.lower() not in sentence:
                text += f" ({msg})"
            texts.append(text)
        return "; ".join(texts)
    snippet = (body or "").strip().splitlines()[0][:200] if (body or "").strip() else ""
    if status == 404:
        return "not found" + (f" ({snippet})" if snippet else "")
    if status == 405:
        return "method not allowed: the registry may be read-only or have deletes disabled" + (f" ({snippet})" if snippet else "")
    return f"HTTP {status}" + (f": {snippet}" if snippet else "")
