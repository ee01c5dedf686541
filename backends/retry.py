"""Retry timing: jittered exponential backoff, and the upstream's own Retry-After."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from gateway.policies import RetryPolicy


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Full jitter (AWS style): uniform in [0, min(max, base * 2^attempt)]; spreads retries
    of many clients so a recovering upstream is not hit by a synchronized wave."""
    cap = min(policy.max_backoff_s, policy.backoff_s * (2**attempt))
    return random.uniform(cap / 2, cap)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
