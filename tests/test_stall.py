from app.sansio.stall import StallWatch


def test_the_same_packet_at_the_head_for_the_timeout_is_a_stall():
    watch = StallWatch(10)
    head = object()
    assert not watch.stalled("a", head, 100.0)
    assert not watch.stalled("a", head, 109.9)
    assert watch.stalled("a", head, 110.0)


def test_a_moving_head_is_a_slow_reader_not_a_stall():
    watch = StallWatch(10)
    for i in range(30):
        assert not watch.stalled("a", object(), 100.0 + i)


def test_each_socket_is_watched_on_its_own():
    watch = StallWatch(10)
    stuck, moving = object(), None
    assert not watch.stalled("stuck", stuck, 0.0)
    for t in range(1, 11):
        moving = object()
        assert not watch.stalled("moving", moving, float(t))
    assert watch.stalled("stuck", stuck, 10.0)
    assert not watch.stalled("moving", moving, 10.0)


def test_forgetting_a_socket_restarts_its_clock():
    watch = StallWatch(10)
    head = object()
    watch.stalled("a", head, 0.0)
    watch.forget("a")
    assert not watch.stalled("a", head, 15.0)
    assert watch.stalled("a", head, 25.0)
    watch.forget("never seen")
