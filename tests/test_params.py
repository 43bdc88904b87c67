import math

import pytest

from app.sansio.params import Param, ParamError, validate

PARAMS = (
    Param("steps", int, default=10, minimum=1, maximum=100),
    Param("delay", float, default=1.0, minimum=0.0, maximum=5.0),
)


def test_defaults_fill_missing_params():
    assert validate(PARAMS, None) == {"steps": 10, "delay": 1.0}
    assert validate(PARAMS, {"steps": 3}) == {"steps": 3, "delay": 1.0}


def test_form_strings_are_coerced():
    assert validate(PARAMS, {"steps": " 4 ", "delay": "0.25"}) == {"steps": 4, "delay": 0.25}


def test_whole_floats_count_as_integers_and_ints_as_floats():
    assert validate(PARAMS, {"steps": 4.0, "delay": 2}) == {"steps": 4, "delay": 2.0}


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"steps": 0}, "steps", "between 1 and 100"),
        ({"steps": 101}, "steps", "between 1 and 100"),
        ({"steps": 2.5}, "steps", "an integer"),
        ({"steps": "ten"}, "steps", "an integer"),
        ({"steps": True}, "steps", "an integer"),
        ({"steps": None}, "steps", "an integer"),
        ({"delay": -0.1}, "delay", "between 0.0 and 5.0"),
        ({"delay": math.nan}, "delay", "finite"),
        ({"delay": "inf"}, "delay", "finite"),
        ({"delay": [1]}, "delay", "a number"),
        ({"hours": 3}, "hours", "not a parameter"),
        ([1, 2], "params", "an object"),
    ],
)
def test_bad_params_name_the_field_and_reason(raw, field, reason):
    with pytest.raises(ParamError) as info:
        validate(PARAMS, raw)
    assert info.value.field == field
    assert reason in info.value.reason


def test_describe():
    assert PARAMS[0].describe() == {
        "name": "steps",
        "type": "integer",
        "default": 10,
        "minimum": 1,
        "maximum": 100,
        "help": "",
    }
