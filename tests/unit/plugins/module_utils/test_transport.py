"""_transport: which TLS each origin gets (ca_path, client certificate, Docker certs.d), origins."""

from __future__ import annotations

import pytest

from ansible_collections.regops.registry.plugins.module_utils._transport import (
    HostTls,
    TlsSettings,
    certs_d_entries,
    certs_dir,
    origin,
)

REGISTRY = ("https", "reg.example.com:443")


@pytest.mark.parametrize("url,expected", [
    ("https://Reg.Example.com/v2/", ("https", "reg.example.com:443")),
    ("https://reg.example.com:443/v2/", ("https", "reg.example.com:443")),
    ("http://127.0.0.1:5000/v2/", ("http", "127.0.0.1:5000")),
    ("https://[::1]:5000/v2/", ("https", "[::1]:5000")),
])
def test_origin(url, expected):
    assert origin(url) == expected


def make_certs_d(root, name, *files):
    folder = root / name
    folder.mkdir(parents=True)
    for file in files:
        (folder / file).write_text(file)
    return folder


def test_certs_d_follows_the_docker_daemon_rules(tmp_path):
    folder = make_certs_d(tmp_path, "reg.example.com", "ca.crt", "extra.crt", "client.cert", "client.key",
                          "lonely.cert", "README")
    cas, pair = certs_d_entries(str(tmp_path), REGISTRY)  # port 443: the directory without a port counts too
    assert cas == (str(folder / "ca.crt"), str(folder / "extra.crt"))
    assert pair == (str(folder / "client.cert"), str(folder / "client.key"))
    assert certs_d_entries(str(tmp_path), ("https", "reg.example.com:5000")) == ((), None)
    port = make_certs_d(tmp_path, "reg.example.com:5000", "ca.crt")
    assert certs_d_entries(str(tmp_path), ("https", "reg.example.com:5000")) == ((str(port / "ca.crt"),), None)


def test_client_certificate_option_goes_only_to_the_registry_origin(tmp_path):
    tls = TlsSettings(REGISTRY, ca_path="/ca.pem", client_cert="/c.pem", client_key="/k.pem", directory=str(tmp_path))
    assert tls.for_origin(REGISTRY) == HostTls(True, ("/ca.pem",), ("/c.pem", "/k.pem"))
    # another port of the same host, a storage host, a token realm: ca_path adds trust, no certificate
    for other in (("https", "reg.example.com:5000"), ("https", "s3.amazonaws.com:443"), ("https", "auth.example.com:443")):
        assert tls.for_origin(other) == HostTls(True, ("/ca.pem",), None)
    assert tls.for_origin(("http", "reg.example.com:443")) == HostTls(False)


def test_certs_d_client_certificate_goes_to_its_own_host_and_the_option_wins(tmp_path):
    storage = make_certs_d(tmp_path, "storage.example.com", "client.cert", "client.key")
    make_certs_d(tmp_path, "reg.example.com", "client.cert", "client.key")
    tls = TlsSettings(REGISTRY, client_cert="/c.pem", directory=str(tmp_path))
    assert tls.for_origin(REGISTRY).client_cert == ("/c.pem", None)
    assert tls.for_origin(("https", "storage.example.com:443")).client_cert == (
        str(storage / "client.cert"), str(storage / "client.key"))


def test_validate_certs_false_drops_the_anchors_keeps_the_certificate(tmp_path):
    tls = TlsSettings(REGISTRY, validate_certs=False, ca_path="/ca.pem", client_cert="/c.pem", directory=str(tmp_path))
    assert tls.for_origin(REGISTRY) == HostTls(False, (), ("/c.pem", None))


def test_certs_dir_default_and_override():
    assert certs_dir({}) == "/etc/docker/certs.d"
    assert certs_dir({"REGOPS_REGISTRY_CERTS_DIR": "/home/u/certs.d"}) == "/home/u/certs.d"
