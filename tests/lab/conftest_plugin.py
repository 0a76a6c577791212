"""Pytest fixtures (load with ``pytest_plugins = ["tests.lab.conftest_plugin"]``).

``lab_plain`` / ``lab_basic`` / ``lab_token``: one started registry per mode for the whole session, in a
pytest tmp dir, stopped at the end. ``lab``: parametrized over the three modes (ids plain/basic/token).
``lab_session``: a seeding ``LabSession`` (user alice) for ``lab``.
"""

from __future__ import annotations

import pytest

from tests.lab import seed
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
