# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: the wall time of every task (first start to last result), written as JSON to the file in
REGOPS_TASK_TIMES at the end of the run (ansible.posix.profile_tasks is not in the venv)."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: regops_task_times
type: aggregate
short_description: Time every task (benchmarks only)
description: Writes [[task name, seconds], ...] to the file in E(REGOPS_TASK_TIMES).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "regops_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._times: list[list] = []
        self._started = None

    def _close(self) -> None:
        if self._started is not None:
            name, start = self._started
            self._times.append([name, time.perf_counter() - start])
            self._started = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._started = (task.get_name(), time.perf_counter())

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("REGOPS_TASK_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as out:
                json.dump(self._times, out)
