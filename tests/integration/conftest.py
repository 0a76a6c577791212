"""Integration fixtures: one seeded lab registry per mode (plain, TLS+Basic, TLS+token)."""

from __future__ import annotations

from tests.integration.runner import ROOT
from tests.lab import reliability

pytest_plugins = ["tests.lab.conftest_plugin"]

RELIABILITY_ROWS = ROOT / ".tmp" / "reliability" / "rows.json"


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
    """The rows of the reliability table (docs/reliability.md is made from them by tests/reliability_report.py)."""
    reliability.write(RELIABILITY_ROWS)
