"""Named random streams derived from a scenario seed.

Every random draw in capsim comes from a stream named for what it drives
(``"network.latency.same_zone.write"``, ``"workload.c3"``, ``"nemesis"``). A
stream's generator is seeded from the scenario seed and the SHA-256 of its
name, so streams are independent of creation order, of the process and of
``PYTHONHASHSEED``, and adding a stream never shifts another.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stream", "stream_seed"]


def stream_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Return the seed sequence of stream ``name`` under scenario ``seed``."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]
    # The seed goes first as up to four 32-bit words so that seeds beyond 2**32 still differ.
    seed_words = [(seed >> (32 * i)) & 0xFFFFFFFF for i in range(4)]
    return np.random.SeedSequence(entropy=seed_words + words)


def stream(seed: int, name: str) -> np.random.Generator:
    """Return a fresh numpy generator for stream ``name`` under scenario ``seed``."""
    return np.random.Generator(np.random.PCG64(stream_seed(seed, name)))
