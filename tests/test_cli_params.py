"""``start``'s key=value arguments become the task's JSON params."""

from __future__ import annotations

import pytest

from cli.params import parse_params, parse_value, split_assignments

KINDS = {"steps": "integer", "delay": "number", "recipients": "array"}


def test_values_are_json_where_possible_else_text():
    assert parse_params(["steps=5", "delay=0.1", "x=[1, 2]", "s=hello", 'q="5"', "t=true"]) == {
        "steps": 5,
        "delay": 0.1,
        "x": [1, 2],
        "s": "hello",
        "q": "5",
        "t": True,
    }


def test_an_array_parameter_takes_comma_separated_names():
    assert parse_params(["recipients=alice, bob,,carol"], KINDS) == {"recipients": ["alice", "bob", "carol"]}
    assert parse_params(['recipients=["a", "b"]'], KINDS) == {"recipients": ["a", "b"]}
    assert parse_params(["recipients=alice"], KINDS) == {"recipients": ["alice"]}
    assert parse_params(["recipients=42"], KINDS) == {"recipients": ["42"]}, "a name that looks like a number"
    assert parse_params(["recipients="], KINDS) == {"recipients": []}


def test_not_json_numbers_stay_text_for_the_server_to_refuse():
    assert parse_value("NaN") == "NaN"
    assert parse_value("Infinity") == "Infinity"
    assert parse_value("") == ""


def test_only_the_first_equals_sign_splits():
    assert split_assignments(["a=b=c", " k =v"]) == [("a", "b=c"), ("k", "v")]


@pytest.mark.parametrize(
    ("items", "message"),
    [(["steps"], "expected key=value"), (["=5"], "expected key=value"), (["a=1", "a=2"], "a is given twice")],
)
def test_malformed_arguments(items, message):
    with pytest.raises(ValueError, match=message):
        parse_params(items)
