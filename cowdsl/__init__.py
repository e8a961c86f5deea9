"""cowdsl: scenarios for Linux copy-on-write, page pinning and fork."""

__version__ = "0.1.0"
