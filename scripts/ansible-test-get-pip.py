"""Stand-in for ansible-test's pip bootstrap script (get-pip.py from ci-files.testing.ansible.com, which may be
unreachable): pip from the Python's own ensurepip, then the pinned pip ansible-test asks for from the package index.

ansible-test runs the cached script as `python get_pip.py <pip options> pip==X` (scripts/ansible-test-sanity.sh
places it in ~/.ansible/test/cache/ when no real one is there). --no-setuptools and --no-wheel are get-pip.py's
own options, unknown to `pip install`; the setuptools that Python 3.11's ensurepip brings along stays, which the
sanity tests do not mind.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
arguments = [argument for argument in sys.argv[1:] if argument not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install", *arguments])
