"""medinfra: infrastructure-as-code and compliance toolkit for hospital Linux servers."""

from importlib.metadata import version

# The installed distribution's version, which setup.py takes from galaxy.yml (the version's one home).
__version__ = version("medinfra")
