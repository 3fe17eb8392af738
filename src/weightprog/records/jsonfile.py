"""Reading a run's JSON file: one line naming the file when it cannot be read or parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import WeightprogError


def read_json(path: Path) -> Any:
    """A run's JSON file; unreadable or invalid -> one line naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise WeightprogError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise WeightprogError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
