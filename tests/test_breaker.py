"""The circuit breaker's state: all calls while the service answers, one trial per backoff after that."""

from app.sansio.breaker import Breaker


def test_a_failure_opens_it_for_a_delay_that_doubles_up_to_the_cap():
    breaker = Breaker(first=0.25, cap=1.0)
    assert breaker.allows(0.0)
    assert breaker.failed(10.0) is True, "the first failure of an outage says so"
    assert not breaker.allows(10.2)
    assert breaker.allows(10.25)
    assert breaker.failed(10.25) is False
    assert breaker.delay == 0.5
    assert not breaker.allows(10.7)
    for now in (10.75, 11.75, 12.75):
        assert breaker.allows(now)
        breaker.failed(now)
    assert breaker.delay == 1.0, "capped"


def test_a_success_closes_it_and_tells_how_long_the_outage_was():
    breaker = Breaker(first=0.25, cap=1.0)
    assert breaker.succeeded(5.0) is None, "no outage to end"
    breaker.failed(10.0)
    breaker.failed(10.5)
    assert breaker.succeeded(12.5) == 2.5
    assert breaker.allows(12.6)
    breaker.failed(20.0)
    assert breaker.delay == 0.25, "a new outage starts the backoff over"
