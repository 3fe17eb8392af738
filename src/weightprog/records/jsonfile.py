"""Reading a run's JSON file: one line naming the file when it cannot be read or parsed, and
`Fields`, the typed reading of a record's objects, whose errors name the bad field's JSON pointer
(`load_record` adds the file: `runs/a/advice.json: /properties/0/factor: expected a number, got 'x'`)."""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import WeightprogError

T = TypeVar("T")
_MISSING: Any = object()


def read_json(path: Path) -> Any:
    """A run's JSON file; unreadable or invalid -> one line naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise WeightprogError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise WeightprogError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


class RecordError(WeightprogError):
    """A record's field missing or not of its type; `pointer` is the field's JSON pointer."""

    def __init__(self, pointer: str, message: str):
        self.pointer, self.message = pointer or "/", message
        super().__init__(f"{self.pointer}: {message}")

    def in_file(self, path: Path) -> WeightprogError:
        return WeightprogError(f"{path}: {self.pointer}: {self.message}")


def load_record(path: Path, parse: Callable[[Any], T]) -> T:
    """The record `parse` (a `from_json`) makes of the file at `path`; a bad field names the file and the field."""
    try:
        return parse(read_json(path))
    except RecordError as exc:
        raise exc.in_file(path) from None


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@dataclass(frozen=True)
class Fields:
    """A JSON object being read into a record. Each getter checks its field's type; a default
    makes the field optional (older files without it). Values are returned as the file has them
    (an integer stays one), so a record written back is the same text."""

    data: Any
    pointer: str = ""

    def __post_init__(self):
        if not isinstance(self.data, dict):
            raise RecordError(self.pointer, f"expected an object, got {_shown(self.data)}")

    def at(self, key: str | int) -> str:
        """The JSON pointer of a field (RFC 6901: `~` and `/` in a key escaped)."""
        return f"{self.pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"

    def _get(self, key: str, check: Callable[[Any], bool], what: str, default: Any) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise RecordError(self.at(key), "missing")
            return default
        value = self.data[key]
        if not check(value):
            raise RecordError(self.at(key), f"expected {what}, got {_shown(value)}")
        return value

    def number(self, key: str, default: Any = _MISSING) -> float:
        return self._get(key, _is_number, "a number", default)

    def optional_number(self, key: str) -> float | None:
        """A number, or None where the file has null or no such key."""
        return self._get(key, lambda x: x is None or _is_number(x), "a number or null", None)

    def integer(self, key: str, default: Any = _MISSING) -> int:
        return self._get(key, lambda x: isinstance(x, int) and not isinstance(x, bool), "an integer", default)

    def text(self, key: str, default: Any = _MISSING) -> str:
        return self._get(key, lambda x: isinstance(x, str), "a string", default)

    def numbers(self, key: str) -> tuple[float, ...]:
        return tuple(self._get(key, lambda x: isinstance(x, list) and all(map(_is_number, x)),
                               "a list of numbers", _MISSING))

    def texts(self, key: str) -> tuple[str, ...]:
        return tuple(self._get(key, lambda x: isinstance(x, list) and all(isinstance(s, str) for s in x),
                               "a list of strings", _MISSING))

    def mapping(self, key: str, default: Any = _MISSING) -> dict[str, Any]:
        """An object kept as it is (a settings object the record does not type field by field)."""
        return self._get(key, lambda x: isinstance(x, dict), "an object", default)

    def obj(self, key: str) -> Fields:
        return Fields(self.mapping(key), self.at(key))

    def objs(self, key: str) -> tuple[Fields, ...]:
        """A list of objects, each read with its own pointer (`/points/3`)."""
        items = self._get(key, lambda x: isinstance(x, list), "a list", _MISSING)
        return tuple(Fields(x, f"{self.at(key)}/{i}") for i, x in enumerate(items))


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
