"""The errors a bad configuration or path raises; each ``str()`` is one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value; ``str()`` is one line: ``source: key.path: problem``."""


class DataConfigError(ValueError):
    """A bad data setting or a bad dataset on disk; the message is one line."""
