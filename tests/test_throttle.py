from app.sansio.throttle import Throttle


def test_first_report_passes_then_one_per_interval():
    throttle = Throttle(0.05)
    sent = [t for t in (0.0, 0.01, 0.02, 0.05, 0.06, 0.2) if throttle.ready(t)]
    assert sent == [0.0, 0.05, 0.2]


def test_final_report_always_passes():
    throttle = Throttle(10)
    assert throttle.ready(0.0)
    assert not throttle.ready(0.1)
    assert throttle.ready(0.2, final=True)


def test_zero_interval_sends_everything():
    throttle = Throttle(0)
    assert all(throttle.ready(t) for t in (0.0, 0.0, 0.0))


def test_due_is_when_the_next_report_may_pass():
    throttle = Throttle(0.05)
    assert throttle.due == float("-inf")
    throttle.ready(1.0)
    assert throttle.due == 1.05
    assert not throttle.ready(1.04)
    assert throttle.ready(throttle.due)
