"""An honest CPU-bound task: count the primes below a limit with a segmented sieve."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.tasks.runtime import TaskContext

# Big enough that slicing dominates Python overhead, small enough to report often.
SEGMENT = 1 << 20


def _base_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for p in range(2, math.isqrt(limit) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, limit + 1, p)))
    return [i for i, is_prime in enumerate(sieve) if is_prime]


def segments(limit: int, size: int = SEGMENT) -> Iterator[tuple[int, int, int | None]]:
    """Yield ``(segment_end, primes_in_segment, largest_prime_in_segment)`` for numbers below ``limit``."""
    base = _base_primes(math.isqrt(max(limit - 1, 1)))
    for low in range(0, limit, size):
        high = min(low + size, limit)
        seg = bytearray([1]) * (high - low)
        for n in range(low, min(2, high)):
            seg[n - low] = 0
        for p in base:
            if p * p >= high:
                break
            start = max(p * p, (low + p - 1) // p * p)
            seg[start - low :: p] = bytes(len(range(start - low, high - low, p)))
        last = seg.rfind(1)
        yield high, seg.count(1), (low + last if last >= 0 else None)


def compute_primes(ctx: TaskContext, limit: int) -> dict[str, int | None]:
    total = math.ceil(limit / SEGMENT)
    ctx.report(0, total, f"Sieving below {limit:,}")
    count, largest = 0, None
    for i, (high, found, top) in enumerate(segments(limit), start=1):
        count += found
        largest = top if top is not None else largest
        # A segment takes milliseconds: report each whole percent, not each segment.
        if i == total or i * 100 // total != (i - 1) * 100 // total:
            ctx.report(i, total, f"{count:,} primes below {high:,}")
        else:
            ctx.check_cancelled()
    return {"limit": limit, "count": count, "largest": largest}
