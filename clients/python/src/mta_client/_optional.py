"""Optional dependencies (the ``pandas``, ``polars`` and ``pyarrow`` extras), imported when used."""

from __future__ import annotations

import importlib.util

from .errors import ConfigurationError


def require(module: str, extra: str) -> None:
    """Raises a :class:`ConfigurationError` naming the extra to install when ``module`` is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"this needs the `{module}` package: pip install 'mta-client[{extra}]'"
        )
