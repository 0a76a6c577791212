"""Real-registry test harness: ``start_registry`` (registry.py), seeding (seed.py), token server, PKI, CLI."""

from __future__ import annotations

from tests.lab.registry import DEFAULT_USERS, MODES, Lab, RegistryProcess, Request, start_registry

__all__ = ["DEFAULT_USERS", "MODES", "Lab", "RegistryProcess", "Request", "start_registry"]
