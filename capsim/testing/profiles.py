"""Hypothesis settings profiles: ``ci`` for the test suite, ``thorough`` for long hunts.

Both are registered when :mod:`capsim.testing` is imported; :func:`load_profile` selects
one, by default the one named in ``CAPSIM_HYPOTHESIS_PROFILE`` (else ``ci``):

* ``ci``: derandomized (the same examples on every run and every machine, no example
  database), 25 examples a test, no deadline (a simulated run's wall time varies with
  the machine, its verdict does not);
* ``thorough``: randomized, 1,000 examples a test, no deadline.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

__all__ = ["PROFILES", "PROFILE_ENV", "load_profile"]

#: The environment variable that names the profile :func:`load_profile` selects.
PROFILE_ENV = "CAPSIM_HYPOTHESIS_PROFILE"

PROFILES = {
    "ci": settings(
        derandomize=True,
        database=None,
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "thorough": settings(max_examples=1000, deadline=None),
}

for _name, _settings in PROFILES.items():
    settings.register_profile(_name, _settings)


def load_profile(name: str | None = None) -> str:
    """Select profile ``name`` (default: ``$CAPSIM_HYPOTHESIS_PROFILE``, else ``ci``; any
    registered profile) for every Hypothesis test that does not set its own settings;
    returns the name."""
    name = name or os.environ.get(PROFILE_ENV) or "ci"
    try:
        settings.load_profile(name)
    except InvalidArgument:
        raise ValueError(
            f"unknown Hypothesis profile {name!r}; capsim's: {sorted(PROFILES)}"
        ) from None
    return name
