"""Pytest fixtures: one lab registry per mode for the whole session."""

from __future__ import annotations

import pytest

from tests.lab.registry import start_registry


def _lab(mode, tmp_path_factory):
    lab = start_registry(mode, tmp_path_factory.mktemp(f"lab-{mode}"))
    yield lab
    lab.close()


@pytest.fixture(scope="session")
def lab_plain(tmp_path_factory):
    yield from _lab("plain", tmp_path_factory)


@pytest.fixture(scope="session")
def lab_basic(tmp_path_factory):
    yield from _lab("basic", tmp_path_factory)


@pytest.fixture(scope="session")
def lab_token(tmp_path_factory):
    yield from _lab("token", tmp_path_factory)


@pytest.fixture(scope="session", params=["plain", "basic", "token"])
def lab(request):
    return request.getfixturevalue(f"lab_{request.param}")
