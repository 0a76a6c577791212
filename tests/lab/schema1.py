"""Legacy Docker schema 1 manifests, signed as docker 1.x signed them (libtrust "pretty" JWS, ES256), so that a
registry accepts them and readers can be tested on the bytes registries still serve for old images.

The signature block is inserted before the manifest's closing brace; the JWS ``protected`` header tells readers
how to cut it out again (``formatLength`` bytes of the original, then ``formatTail``): the digest covers that
payload, not the bytes served.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def payload(name: str, tag: str, layers: list[tuple[str, dict]], architecture: str = "amd64") -> bytes:
    """A schema 1 manifest, pretty-printed with 3 spaces as docker wrote them. ``layers``: (blob digest,
    v1Compatibility dict), newest first."""
    manifest = {"schemaVersion": 1, "name": name, "tag": tag, "architecture": architecture,
                "fsLayers": [{"blobSum": digest} for digest, _v1 in layers],
                "history": [{"v1Compatibility": json.dumps(v1, separators=(",", ":"))} for _digest, v1 in layers]}
    return json.dumps(manifest, indent=3).encode()


def _key_id(public_key) -> str:
    """libtrust's key ID: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


def sign(content: bytes, key=None, time: str = "2016-03-04T05:06:08Z") -> bytes:
    """``content`` (a pretty-printed schema 1 manifest) with a valid ES256 signature block."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    tail_start = content.rstrip().rfind(b"}")
    length = len(content[:tail_start].rstrip())
    protected = b64url(json.dumps({"formatLength": length, "formatTail": b64url(content[length:]),
                                   "time": time}).encode())
    r, s = decode_dss_signature(key.sign(f"{protected}.{b64url(content)}".encode(), ec.ECDSA(hashes.SHA256())))
    numbers = key.public_key().public_numbers()
    jwk = {"crv": "P-256", "kid": _key_id(key.public_key()), "kty": "EC",
           "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}
    signature = {"header": {"jwk": jwk, "alg": "ES256"},
                 "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")), "protected": protected}
    block = json.dumps([signature], indent=3).replace("\n", "\n   ")
    return content[:length] + b',\n   "signatures": ' + block.encode() + b"\n}"
