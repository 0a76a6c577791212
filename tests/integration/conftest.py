"""Integration fixtures: one seeded lab registry per mode (plain, TLS+Basic, TLS+token).

The suite may run on several pytest-xdist workers (``make integration``: ``-n 2 --dist loadfile``). Every process of
one run shares a run id (``PYTEST_XDIST_TESTRUNUID``) and writes what the whole-run checks need (transcripts,
secrets, module results, reliability rows) to its own files in ``.tmp/test-runs/<run id>/``
(tests/lab/transcripts.py). The tests marked ``whole_run`` read every process's files, so they must run after every
other test of the run: in one process that is the end of the session (the test_zz_* files come last); under xdist
they are skipped on the workers and run by a last pytest with the same run id (the Makefile does it).
"""

from __future__ import annotations

import os

import pytest

from tests.integration.runner import ROOT
from tests.lab import reliability, transcripts

pytest_plugins = ["tests.lab.conftest_plugin"]

RELIABILITY_ROWS = ROOT / ".tmp" / "reliability" / "rows.json"
WHOLE_RUN_LATER = ("whole-run check: on xdist workers other tests are still running; it runs after them "
                   f"(make integration: a last pytest of tests/integration/test_zz_*.py -m whole_run "
                   f"with the same {transcripts.RUN_ENV})")
# The files that take longest (durations of a 2-worker run, docs/dev/testing.md), handed out first: xdist gives each
# worker the next file when it is free, so a long file started last would keep one worker busy while the other idles.
SLOWEST_FILES_FIRST = ("test_registry_deletes.py", "test_registries.py", "test_doc_examples.py", "test_modules.py",
                       "test_prune.py", "test_scaling.py", "test_load.py", "test_facts_scale.py",
                       "test_hostile_input.py", "test_mirror.py", "test_mirror_referrers.py")


def is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    """One run id for this process and the xdist workers it starts (a worker has its controller's already)."""
    config.addinivalue_line("markers", "whole_run: checks what every process of the test run recorded; runs last")
    if is_xdist_worker(config):
        return
    run = getattr(config.option, "testrunuid", None) or os.environ.get(transcripts.RUN_ENV) or transcripts.new_run_id()
    os.environ[transcripts.RUN_ENV] = run
    if hasattr(config.option, "testrunuid"):  # xdist is installed: its workers get this id
        config.option.testrunuid = run
        config.option.loadscopereorder = False  # files in the order the workers collected (slowest first), not by size
    transcripts.prune_old_runs()


def pytest_collection_modifyitems(config, items):
    if is_xdist_worker(config):
        rank = {name: index for index, name in enumerate(SLOWEST_FILES_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order
        for item in items:
            if item.get_closest_marker("whole_run"):
                item.add_marker(pytest.mark.skip(reason=WHOLE_RUN_LATER))


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
    """The rows of the reliability table (docs/reliability.md is made from them by tests/reliability_report.py):
    each process writes its own; the process that is not a worker gathers the run's, after its workers ended."""
    reliability.write_process_rows()
    if not is_xdist_worker(session.config):
        reliability.merge_run_rows(RELIABILITY_ROWS)
