import pytest

from app.tasks.primes import segments


def naive(limit: int) -> list[int]:
    return [n for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1))]


@pytest.mark.parametrize("limit", [2, 3, 10, 11, 100, 1000, 7919, 7920])
@pytest.mark.parametrize("size", [7, 64, 1 << 20])
def test_segments_agree_with_trial_division(limit, size):
    parts = list(segments(limit, size))
    expected = naive(limit)
    assert sum(found for _, found, _ in parts) == len(expected)
    tops = [top for _, _, top in parts if top is not None]
    assert (tops[-1] if tops else None) == (expected[-1] if expected else None)
    assert [high for high, _, _ in parts][-1] == limit


def test_known_counts():
    assert sum(found for _, found, _ in segments(10**6)) == 78498
    assert sum(found for _, found, _ in segments(10**7)) == 664579
