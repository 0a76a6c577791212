# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: append every result of a regops.registry module to the JSON-lines file named by
REGOPS_RESULTS_LOG, so tests/integration/test_zz_return_keys.py can hold each module's RETURN against what the
suite's playbooks really got."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: regops_results
type: aggregate
short_description: Record the results of regops.registry modules (tests only)
description: Appends one JSON line per module result to the file in E(REGOPS_RESULTS_LOG).
"""

PREFIX = "regops.registry."


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "regops_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status: str) -> None:
        path = os.environ.get("REGOPS_RESULTS_LOG")
        action = result._task.action  # pylint: disable=protected-access
        if not path or not action or not action.startswith(PREFIX) or action.count(".") != 2:
            return
        entry = {"module": action[len(PREFIX):], "status": status, "check_mode": bool(result._task.check_mode),
                 "result": result._result}  # pylint: disable=protected-access
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        if "results" not in result._result:  # pylint: disable=protected-access  # a loop: its items come one by one
            self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if "results" not in result._result:  # pylint: disable=protected-access
            self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_item_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_item_on_failed(self, result):
        self._record(result, "failed")

    def v2_runner_item_on_skipped(self, result):
        self._record(result, "skipped")
