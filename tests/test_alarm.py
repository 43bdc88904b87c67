"""The flag a tight reporting loop reads instead of the clock."""

import os
import time

from app.tasks.alarm import Alarm
from tests.support import wait_for


def test_a_new_alarm_has_rung_so_the_first_report_reads_the_clock():
    assert Alarm().rang


def test_it_rings_once_the_deadline_passes():
    alarm = Alarm()
    alarm.set(time.monotonic() + 0.05, time.monotonic())
    assert not alarm.rang
    wait_for(lambda: alarm.rang, 10, "the alarm")


def test_a_later_deadline_replaces_the_earlier_one():
    alarm, witness = Alarm(), Alarm()
    alarm.set(time.monotonic() + 0.01, time.monotonic())
    alarm.set(time.monotonic() + 60, time.monotonic())
    # The watcher rings in deadline order: once the witness has rung, the replaced
    # deadline, earlier than the witness's, has been passed over.
    witness.set(time.monotonic() + 0.1, time.monotonic())
    wait_for(lambda: witness.rang, 10, "the witness")
    assert not alarm.rang
    alarm.set(time.monotonic() + 0.05, time.monotonic())
    wait_for(lambda: alarm.rang, 10, "the alarm")


def test_a_deadline_already_passed_leaves_it_rung():
    alarm = Alarm()
    now = time.monotonic()
    alarm.set(now + 60, now)
    alarm.set(now, now)
    assert alarm.rang


def test_many_alarms_ring_each_at_its_own_deadline():
    now = time.monotonic()
    soon, later = [Alarm() for _ in range(50)], [Alarm() for _ in range(50)]
    for alarm in soon:
        alarm.set(now + 0.05, now)
    for alarm in later:
        alarm.set(now + 60, now)
    wait_for(lambda: all(a.rang for a in soon), 10, "the early alarms")
    assert not any(a.rang for a in later)


def test_alarms_ring_in_a_forked_child_too():
    # The worker forks a work horse per job after its own alarms may have started the
    # watcher thread, which the child does not inherit.
    Alarm().set(time.monotonic() + 0.01, time.monotonic())
    pid = os.fork()
    if pid == 0:
        alarm = Alarm()
        alarm.set(time.monotonic() + 0.05, time.monotonic())
        try:
            wait_for(lambda: alarm.rang, 10, "the alarm in the child")
        finally:
            os._exit(0 if alarm.rang else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
