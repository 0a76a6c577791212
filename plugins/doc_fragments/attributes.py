# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Attributes shared by every module of the collection.
    DOCUMENTATION = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/regops.registry.registry) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - regops.registry.registry
"""

    CHECK_MODE_READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode; the module only reads.
    support: full
  diff_mode:
    description: Nothing is changed, so there is no diff.
    support: N/A
  idempotent:
    description: Reads only.
    support: full
"""

    WRITES = r"""
options: {}
attributes:
  check_mode:
    description: In check mode only read requests are sent; the result says exactly what would change.
    support: full
  diff_mode:
    description: Returns C(diff) with the state before and after (predicted in check mode).
    support: full
  idempotent:
    description: A second identical run reports no change and sends no write request.
    support: full
"""
