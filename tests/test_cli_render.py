"""The CLI's terminal text: durations, rates, bars, progress lines, tables and in-place redraws."""

from __future__ import annotations

import math

import pytest

from cli.render import (
    MAX_BAR,
    clean,
    display_width,
    event_from_task,
    fit,
    format_duration,
    format_rate,
    redraw,
    render_bar,
    render_line,
    table,
)

RUNNING = {
    "task_id": "3f2a9c1d-0000-4000-8000-000000000000",
    "name": "example_long_task",
    "status": "running",
    "progress": 47,
    "step": 14,
    "total": 30,
    "message": "Step 14 of 30",
    "rate": 2.13,
    "eta": 7.4,
    "duration": 6.6,
    "error": None,
    "result": None,
}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "--:--"),
        (math.nan, "--:--"),
        (math.inf, "--:--"),
        (0, "0:00"),
        (5.4, "0:05"),
        (59.6, "1:00"),
        (65, "1:05"),
        (3599, "59:59"),
        (3725, "1:02:05"),
        (-3, "0:00"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(None, ""), (0, ""), (-1, ""), (math.nan, ""), (2.13, "2.1/s"), (0.5, "30.0/min"), (0.001, "3.6/h")],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


@pytest.mark.parametrize("ascii_only", [False, True])
@pytest.mark.parametrize("fraction", [-1, 0, 0.01, 0.33, 0.5, 0.999, 1, 7, math.nan])
def test_a_bar_always_has_its_width(fraction, ascii_only):
    assert len(render_bar(fraction, 10, ascii_only=ascii_only)) == 10


def test_bar_fill():
    assert render_bar(0, 4) == "    "
    assert render_bar(1, 4) == "████"
    assert render_bar(0.5, 4) == "██  "
    assert render_bar(0.5625, 4) == "██▎ ", "eighths of a cell"
    assert render_bar(0.5, 4, ascii_only=True) == "##--"
    assert render_bar(2, 4, ascii_only=True) == "####"


def test_a_running_line_has_every_field_when_there_is_room():
    line = render_line(RUNNING, 160)
    for part in ("3f2a9c1d", "example_long_task", "47%", "14/30", "2.1/s", "ETA 0:07", "Step 14 of 30"):
        assert part in line
    assert "[" + "█" * 14 in line and len(line.split("[")[1].split("]")[0]) == MAX_BAR


@pytest.mark.parametrize("width", [20, 40, 60, 79, 80, 100, 120, 200])
@pytest.mark.parametrize("ascii_only", [False, True])
def test_a_line_never_exceeds_the_width(width, ascii_only):
    long_message = {**RUNNING, "message": "x" * 300, "name": "n" * 80}
    for event in (RUNNING, long_message, {**RUNNING, "message": "日本語のメッセージ" * 10}):
        assert display_width(render_line(event, width, ascii_only=ascii_only)) <= width


def test_lines_of_one_width_have_their_columns_aligned():
    other = {**RUNNING, "task_id": "aaaaaaaa-1", "name": "compute_primes", "progress": 5, "message": "x"}
    a, b = render_line(RUNNING, 100), render_line(other, 100)
    assert a.index("[") == b.index("[") and a.index("%") == b.index("%")


def test_outcomes():
    assert "done 1:05" in render_line(
        {**RUNNING, "status": "succeeded", "duration": 65, "message": "Done"}, 120
    )
    assert "100%" in render_line({**RUNNING, "status": "succeeded", "progress": 40}, 120)
    failed = render_line({**RUNNING, "status": "failed", "error": "The task timed out."}, 120)
    assert "failed" in failed and "The task timed out." in failed
    assert "cancelled" in render_line({**RUNNING, "status": "cancelled"}, 120)
    queued = render_line({**RUNNING, "status": "queued", "attempt": 2, "max_attempts": 3, "rate": 9.0}, 120)
    assert "queued (2/3)" in queued and "/s" not in queued, "no rate once it is not running"
    assert "ETA" not in render_line({**RUNNING, "eta": None}, 120)


def test_server_text_cannot_move_the_cursor_or_break_the_line():
    line = render_line({**RUNNING, "message": "a\x1b[2J\nb\rc\x07", "name": "x\x1b]0;t\x07"}, 120)
    assert "\x1b" not in line and "\n" not in line and "\r" not in line and "\x07" not in line
    assert clean("ok\tno\x9b") == "ok no "


def test_fit_counts_wide_characters_twice():
    assert fit("abcdef", 6) == "abcdef"
    assert fit("abcdef", 4) == "abc…"
    assert display_width(fit("日本語日本語", 5)) <= 5
    assert fit("abc", 0) == ""


def test_redraw_moves_up_over_what_it_drew_and_clears_each_line():
    first = redraw(0, ["one", "two"])
    assert first == "\x1b[2Kone\n\x1b[2Ktwo\n\x1b[J"
    again = redraw(2, ["one", "two", "three"])
    assert again.startswith("\r\x1b[2A")
    assert again.count("\x1b[2K") == 3 and again.endswith("\x1b[J")


def test_table_aligns_columns():
    assert table([["ID", "NAME", "X"], ["abc", "n", "last column ragged"], ["a", "longer", "y"]]) == [
        "ID   NAME    X",
        "abc  n       last column ragged",
        "a    longer  y",
    ]
    assert table([]) == []


def test_a_task_from_the_api_renders_like_an_event():
    task = {"id": "3f2a9c1d-1", "name": "example_long_task", "status": "failed", "progress": 30, "step": 3}
    event = event_from_task({**task, "total": 10, "message": "", "error": "boom", "duration": 2.0})
    assert event["task_id"] == "3f2a9c1d-1" and event["rate"] is None and event["eta"] is None
    assert "boom" in render_line(event, 120)
