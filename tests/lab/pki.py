"""A throwaway PKI for the lab: a CA, a server certificate for 127.0.0.1/localhost, a token signer, and on
demand client certificates. Two PKIs (``make_pki(dir, ca_name=...)``) give two unrelated CAs: a private one
(``ca_path``) and one that stands for the public roots (``SSL_CERT_FILE``) in the per-host TLS tests.

CA and server keys are EC P-256 (instant to generate); the token signer is RSA 2048 for RS256 (or EC
P-256 for ES256). The signer certificate is issued by the CA, so distribution 2.8 accepts tokens whose
JWT header carries ``x5c`` (verified against ``auth.token.rootcertbundle`` = the CA); ``token_bundle``
(CA + signer certificate) additionally lets it find the key by ``kid`` (libtrust fingerprint).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pki:
    directory: Path
    ca_cert: Path        # the CA certificate: `ca_path` for clients, rootcertbundle for the registry
    ca_key: Path
    server_cert: Path    # 127.0.0.1 + localhost, issued by the CA (used by registry and token server)
    server_key: Path
    signing_cert: Path   # token signer, issued by the CA
    signing_key: Path
    token_bundle: Path   # CA + signer certificate: what the registry gets as rootcertbundle
    signing_alg: str     # "RS256" or "ES256"


def _ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regops lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _cert(subject, issuer_cert, public_key, signer, *, ca: bool, sans=None, server=False,
          client=False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer = issuer_cert.subject if issuer_cert is not None else subject
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=7))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None if not ca else 0), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if issuer_cert is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                                        critical=False)
    if ca:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)
    else:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=server,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
    builder = builder.add_extension(usage, critical=True)
    if server or client:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_pki(directory: Path, *, signing_alg: str = "RS256", ca_name: str = "regops lab CA") -> Pki:
    """Write ca.pem/ca.key, server.pem/server.key, signing.pem/signing.key and token-bundle.pem."""
    if signing_alg not in ("RS256", "ES256"):
        raise ValueError("signing_alg must be RS256 or ES256")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _ec_key()
    ca = _cert(_name(ca_name), None, ca_key.public_key(), ca_key, ca=True)
    server_key = _ec_key()
    server = _cert(_name("127.0.0.1"), ca, server_key.public_key(), ca_key, ca=False, server=True,
                   sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    signing_key = rsa.generate_private_key(65537, 2048) if signing_alg == "RS256" else _ec_key()
    signing = _cert(_name("regops lab token signer"), ca, signing_key.public_key(), ca_key, ca=False)
    pki = Pki(directory, directory / "ca.pem", directory / "ca.key", directory / "server.pem", directory / "server.key",
              directory / "signing.pem", directory / "signing.key", directory / "token-bundle.pem", signing_alg)
    pki.ca_cert.write_bytes(_pem(ca))
    pki.server_cert.write_bytes(_pem(server))
    pki.signing_cert.write_bytes(_pem(signing))
    pki.token_bundle.write_bytes(_pem(ca) + _pem(signing))
    _write_key(pki.ca_key, ca_key)
    _write_key(pki.server_key, server_key)
    _write_key(pki.signing_key, signing_key)
    return pki


def issue_client_cert(pki: Pki, directory: Path, name: str = "regops lab client") -> tuple[Path, Path]:
    """A client certificate from the PKI's CA, written as Docker's ``certs.d`` names it: client.cert, client.key."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    key = _ec_key()
    cert_path, key_path = directory / "client.cert", directory / "client.key"
    cert_path.write_bytes(_pem(_cert(_name(name), ca, key.public_key(), ca_key, ca=False, client=True)))
    _write_key(key_path, key)
    return cert_path, key_path


def libtrust_key_id(public_key) -> str:
    """libtrust fingerprint (distribution's ``kid``): base32 of SHA-256(SPKI DER)[:30], in 4-char groups."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))
