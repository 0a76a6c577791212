"""Pytest fixtures (load with ``pytest_plugins = ["tests.lab.conftest_plugin"]``).

``lab_plain`` / ``lab_basic`` / ``lab_token``: one started registry per mode for the whole session, in a
pytest tmp dir, stopped at the end. ``lab``: parametrized over the three modes (ids plain/basic/token).
``lab_session``: a seeding ``LabSession`` (user alice) for ``lab``.
``personas_upstream``: the plain registry behind every personality; ``personas_images``: what is seeded there once
(``seed/app`` tags 1.0 and latest on one single-platform image, ``seed/multi:2.0`` a two-platform index).
``personality``: parametrized over the ten services (ids dockerhub, ghcr, ...), one per service for the session.
"""

from __future__ import annotations

import pytest

from tests.lab import personalities, seed
from tests.lab.registry import MODES, Lab, start_registry


def _lab(mode: str, tmp_path_factory):
    lab = start_registry(mode, tmp_path_factory.mktemp(f"lab-{mode}"))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def lab_plain(tmp_path_factory) -> Lab:
    yield from _lab("plain", tmp_path_factory)


@pytest.fixture(scope="session")
def lab_basic(tmp_path_factory) -> Lab:
    yield from _lab("basic", tmp_path_factory)


@pytest.fixture(scope="session")
def lab_token(tmp_path_factory) -> Lab:
    yield from _lab("token", tmp_path_factory)


@pytest.fixture(scope="session", params=MODES)
def lab(request) -> Lab:
    return request.getfixturevalue(f"lab_{request.param}")


@pytest.fixture(scope="session")
def lab_session(lab) -> seed.LabSession:
    with seed.session_for(lab) as session:
        yield session


@pytest.fixture(scope="session")
def personas_upstream(tmp_path_factory) -> Lab:
    yield from _lab("plain", tmp_path_factory)


@pytest.fixture(scope="session")
def personas_target(tmp_path_factory) -> Lab:
    """A second plain registry: the "other registry" promotes from a personality copy to."""
    yield from _lab("plain", tmp_path_factory)


@pytest.fixture(scope="session")
def personas_images(personas_upstream) -> dict:
    session = seed.LabSession(personas_upstream)
    app = seed.push_image(session, "seed/app", "1.0", layer_sizes=(3000, 1000), seed=1501)
    seed.tag_manifest(session, "seed/app", "latest", app["raw"], app["media_type"])
    multi = seed.push_index(session, "seed/multi", "2.0", seed=1600)
    paged = [f"t{i:02d}" for i in range(1, 6)]
    small = seed.push_image(session, "seed/paged", paged[0], layer_sizes=(100,), seed=1700)
    for tag in paged[1:]:
        seed.tag_manifest(session, "seed/paged", tag, small["raw"], small["media_type"])
    return {"app": app, "multi": multi, "paged": paged}


@pytest.fixture(scope="session")
def personas(personas_upstream, personas_images):
    """``personas(service)``: that service's personality, started on first use, stopped at the session's end."""
    started: dict[str, personalities.Personality] = {}

    def get(service: str) -> personalities.Personality:
        if service not in started:
            started[service] = personalities.personality_for(service, personas_upstream)
            started[service].images = personas_images
        return started[service]

    yield get
    for persona in started.values():
        persona.close()
    errors = {service: persona.errors for service, persona in started.items() if persona.errors}
    assert not errors, errors


@pytest.fixture(scope="session", params=personalities.SERVICES)
def personality(request, personas) -> personalities.Personality:
    return personas(request.param)
