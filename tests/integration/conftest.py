"""Integration fixtures: one seeded lab registry per mode (plain, TLS+Basic, TLS+token)."""

from __future__ import annotations

pytest_plugins = ["tests.lab.conftest_plugin"]
