"""Install a stand-in for ansible-test's pip bootstrap script, so ansible-test works without its download host.

ansible-test bootstraps pip in its virtual environments with a get-pip script that it downloads from a
host CI machines cannot reach, and caches at ~/.ansible/test/cache/get_pip_<version>.py (hacking/sanity.sh points
HOME into the clone's .tmp/ first, so that is .tmp/ansible-test-home/.ansible/test/cache). The stand-in
does the same job with the standard library's ensurepip (in a subprocess: in-process ensurepip breaks
pip's CA settings) followed by a normal pip install of the requested packages.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

STAND_IN = '''#!/usr/bin/env python
# Stand-in for get-pip.py written by regops.registry hacking/offline_get_pip.py
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
packages = [a for a in args if not a.startswith("-")]
options = [a for a in args if a.startswith("-")]
if packages:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + options + packages)
'''


def main() -> int:
    import ansible_test

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    versions = set(re.findall(r"pip='([0-9.]+)'", source.read_text()))
    if not versions:
        print("could not find the pip version ansible-test bootstraps", file=sys.stderr)
        return 1
    cache = Path(os.path.expanduser("~/.ansible/test/cache"))
    cache.mkdir(parents=True, exist_ok=True)
    for version in versions:
        target = cache / f"get_pip_{version.replace('.', '_')}.py"
        target.write_text(STAND_IN)
        print(f"pip bootstrap stand-in: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
