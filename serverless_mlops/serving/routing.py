"""Which version of an alias answers a request, and whether its shadow scores it: a stable hash of a routing key.

The routing key is what the caller sends in ``x-routing-key`` (a user or session id, so one caller sticks to one
version for the whole rollout), else the request's id. :func:`bucket` maps a key to a point in [0, 100) with the
first 8 bytes of its BLAKE2b digest; a request goes to the canary when its point is under the canary's weight, so
weight 0 never and weight 100 always routes there, and raising the weight only moves keys from the champion to the
canary (a key that was on the canary stays there). The shadow samples with another salt, so which requests are
shadowed does not depend on which version answered them.
"""

from __future__ import annotations

import hashlib

SCALE = 100.0 / 2**64


def bucket(key: str, salt: str = "") -> float:
    """``key``'s stable point in [0, 100)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, person=salt.encode()[:16]).digest()
    return int.from_bytes(digest, "big") * SCALE


def to_canary(key: str, weight: float) -> bool:
    """Whether ``key`` goes to a canary on ``weight`` percent."""
    return bucket(key) < weight


def shadowed(key: str, sample: float) -> bool:
    """Whether ``key``'s request is scored by a shadow sampling ``sample`` (0..1) of the requests (at 1, every key's:
    no hash needed)."""
    return sample >= 1.0 or bucket(key, "shadow") < sample * 100.0
