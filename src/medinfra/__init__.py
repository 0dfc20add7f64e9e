"""medinfra: infrastructure-as-code and compliance toolkit for hospital Linux servers."""

__version__ = "0.1.0"
