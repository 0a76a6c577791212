"""reference: grammar, reference parsing, registry locations, digests (NR-01..NR-03)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, strategies as st

from ansible_collections.regops.registry.plugins.module_utils.errors import InvalidInput
from ansible_collections.regops.registry.plugins.module_utils.reference import (
    DigestHasher,
    compute_digest,
    parse_reference,
    parse_registry,
    supported_digest,
    validate_digest,
    validate_reference,
    validate_repository,
    validate_tag,
)

HEX = "a" * 64

# NR-01: the table of protocol reference 2.3.
VECTORS = [
    ("ubuntu", "docker.io", "library/ubuntu", "latest", None),
    ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
    ("docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", None),
    ("index.docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", None),
    ("registry-1.docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", None),
    ("myuser/app", "docker.io", "myuser/app", "latest", None),
    ("example/app:1", "docker.io", "example/app", "1", None),
    ("example.com/app", "example.com", "app", "latest", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
    (f"127.0.0.1:5000/a@sha256:{HEX}", "127.0.0.1:5000", "a", None, f"sha256:{HEX}"),
    ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
    (f"r.example.com/team/app:1.2@sha256:{HEX}", "r.example.com", "team/app", "1.2", f"sha256:{HEX}"),
    (f"ubuntu@sha256:{HEX}", "docker.io", "library/ubuntu", None, f"sha256:{HEX}"),
]


@pytest.mark.parametrize("text,registry,repository,tag,digest", VECTORS)
def test_parse_reference_vectors(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.reference == (digest or tag)


INVALID = ["MyRepo", "a/-b", "a/b-", "a/b.", "a___b", "a..b", "app:" + "t" * 129, "app:.x", "app:-x",
           "app@sha256:" + "a" * 63, "app@sha256:" + "A" * 64, "app@sha256:xyz", "name:tag:tag", "registry.example.com:5000", "localhost:5000",
           "a" * 64, "", " app", "app "]


@pytest.mark.parametrize("text", INVALID)
def test_parse_reference_rejects(text):
    with pytest.raises(InvalidInput):
        parse_reference(text)


@pytest.mark.parametrize("name", ["a__b", "a--b", "a.b_c-d", "team/app", "a" * 200])
def test_valid_repository_edge_cases(name):
    assert validate_repository(name) == name


def test_uppercase_repository_says_lowercase():
    with pytest.raises(InvalidInput, match="must be lowercase"):
        validate_repository("Team/App")


@pytest.mark.parametrize("tag", ["_x", "t" * 128, "1.0.0-rc.1", "A_b.C-d"])
def test_valid_tags(tag):
    assert validate_tag(tag) == tag


def test_sha512_and_unknown_algorithms():
    assert validate_digest("sha512:" + "b" * 128)
    assert validate_digest("blake3:" + "c" * 64)  # well-formed unknown algorithm: accepted, not verifiable
    with pytest.raises(InvalidInput):
        DigestHasher("blake3:" + "c" * 64)


def test_digests_asked_of_the_registry_must_be_verifiable():
    assert supported_digest("sha512:" + "b" * 128) and validate_reference("sha256:" + "a" * 64)
    for digest in ("blake3:" + "c" * 64, "md5:" + "d" * 32):
        with pytest.raises(InvalidInput, match="only sha256 and sha512 digests are supported"):
            supported_digest(digest)
        with pytest.raises(InvalidInput, match="only sha256 and sha512"):
            validate_reference(digest)
    with pytest.raises(InvalidInput, match="expected '<algorithm>:<hex>'"):
        supported_digest("sha256")


def test_familiar_form_and_round_trip():  # NR-02
    ref = parse_reference("ubuntu:22.04")
    assert ref.familiar() == "ubuntu:22.04"
    assert str(ref) == "docker.io/library/ubuntu:22.04"
    assert parse_reference(str(ref)) == ref


_component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)


@given(host=st.sampled_from(["registry.example.com", "127.0.0.1:5000", "localhost:443"]),
       path=st.lists(_component, min_size=1, max_size=3),
       tag=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True))
def test_round_trip_property(host, path, tag):  # NR-02
    ref = parse_reference(f"{host}/{'/'.join(path)}:{tag}")
    assert parse_reference(str(ref)) == ref
    assert (ref.registry, ref.repository, ref.tag) == (host, "/".join(path), tag)


@pytest.mark.parametrize("value,scheme,host,base,url", [
    ("registry.example.com", "https", "registry.example.com", "", "https://registry.example.com/v2/"),
    ("127.0.0.1:5000", "https", "127.0.0.1:5000", "", "https://127.0.0.1:5000/v2/"),
    ("http://127.0.0.1:5000", "http", "127.0.0.1:5000", "", "http://127.0.0.1:5000/v2/"),
    ("https://h/artifactory/api/docker/k/", "https", "h", "/artifactory/api/docker/k", "https://h/artifactory/api/docker/k/v2/"),
    ("docker.io", "https", "docker.io", "", "https://registry-1.docker.io/v2/"),
    ("[::1]:5000", "https", "[::1]:5000", "", "https://[::1]:5000/v2/"),
])
def test_parse_registry(value, scheme, host, base, url):
    loc = parse_registry(value)
    assert (loc.scheme, loc.host, loc.base_path, loc.url("/v2/")) == (scheme, host, base, url)


@pytest.mark.parametrize("value", ["", " r.example.com", "ftp://r", "https://u:p@r.example.com", "https://r/?q=1", "bad host"])
def test_parse_registry_rejects(value):
    with pytest.raises(InvalidInput) as err:
        parse_registry(value)
    assert "p@" not in str(err.value)


def test_docker_hub_credential_key():
    assert parse_registry("docker.io").credential_keys[0] == "https://index.docker.io/v1/"


def test_digests_over_exact_bytes():  # CN-04
    raw = b'{ "schemaVersion" :2,\n   "z": 1, "a": 2 }'
    assert compute_digest(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()
    hasher = DigestHasher(compute_digest(raw))
    for i in range(0, len(raw), 5):
        hasher.update(raw[i:i + 5])
    assert hasher.matches() and hasher.size == len(raw)
