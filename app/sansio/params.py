"""Declared task parameters: one declaration drives validation, the API listing and the page form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ParamError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Param:
    """An integer, a number, or a list of names (``type=list``: ``maximum`` bounds its length)."""

    name: str
    type: type[int] | type[float] | type[list]
    default: Any
    minimum: int | float
    maximum: int | float
    help: str = ""

    ITEM_MAX_LENGTH = 64

    def coerce(self, raw: Any) -> Any:
        if self.type is list:
            return self._coerce_list(raw)
        # Form posts send strings; JSON sends numbers. Booleans are ints in Python but never a count.
        if isinstance(raw, bool):
            raise ParamError(self.name, f"must be {self._kind}")
        if isinstance(raw, str):
            raw = raw.strip()
            try:
                raw = int(raw) if self.type is int else float(raw)
            except ValueError:
                raise ParamError(self.name, f"must be {self._kind}") from None
        if self.type is int and isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if self.type is int and not isinstance(raw, int):
            raise ParamError(self.name, f"must be {self._kind}")
        if self.type is float and not isinstance(raw, int | float):
            raise ParamError(self.name, f"must be {self._kind}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ParamError(self.name, "must be a finite number")
        if not self.minimum <= raw <= self.maximum:
            raise ParamError(self.name, f"must be between {self.minimum} and {self.maximum}")
        return self.type(raw)

    def _coerce_list(self, raw: Any) -> list[str]:
        # A form sends one comma-separated string; JSON sends an array of strings.
        if isinstance(raw, str):
            raw = raw.split(",")
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ParamError(self.name, "must be a list of names")
        items = list(dict.fromkeys(item.strip() for item in raw if item.strip()))
        if not self.minimum <= len(items) <= self.maximum:
            raise ParamError(self.name, f"must have between {self.minimum} and {self.maximum} names")
        too_long = next((item for item in items if len(item) > self.ITEM_MAX_LENGTH), None)
        if too_long is not None:
            raise ParamError(self.name, f"names must be at most {self.ITEM_MAX_LENGTH} characters")
        return items

    @property
    def _kind(self) -> str:
        return "an integer" if self.type is int else "a number"

    @property
    def kind(self) -> str:
        return {int: "integer", float: "number", list: "array"}[self.type]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "help": self.help,
        }


def validate(params: tuple[Param, ...], raw: Any) -> dict[str, int | float]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParamError("params", "must be an object")
    known = {p.name for p in params}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParamError(unknown[0], "is not a parameter of this task")
    return {p.name: p.coerce(raw[p.name]) if p.name in raw else _copy(p.default) for p in params}


def _copy(default: Any) -> Any:
    return list(default) if isinstance(default, list) else default
