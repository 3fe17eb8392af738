"""Loading a model spec named on the command line: a reference workload or the user's entry point."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WeightprogError

if TYPE_CHECKING:
    from ..nn.spec import ModelSpec


@contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory on sys.path for the block only: `weightprog` run from a project
    folder finds its modules, and sys.path is as it was afterwards."""
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def load_model_spec(spec: str, eval_size: int | None = None) -> ModelSpec:
    """`package.module:function` or `path/to/file.py:function` -> the model spec `function()` builds.

    This imports and runs the user's own code: that is what an entry point is for. A reference
    workload name (`fmnist-resnet32`, or `fmnist-resnet32@hwa` for its HWA-trained variant) is
    looked up in `weightprog.workloads` first; it comes with validation and calibration data.

    Parameters
    ----------
    spec
        `module:function`, `file.py:function`, or a workload name (`NAME` or `NAME@hwa`).
    eval_size
        Workloads only: evaluate on the first N test items (None: the workload's default).

    Returns
    -------
    ModelSpec

    Raises
    ------
    WeightprogError
        An entry point that cannot be imported, is missing, or returns neither form.
    """
    from ..nn.spec import ModelSpec
    from ..workloads import get_workload, is_workload

    name, _, variant = spec.partition("@")
    if is_workload(name):
        return get_workload(name, variant or "fp", eval_size=eval_size).spec()
    if eval_size is not None:
        raise WeightprogError(f"eval-size: only for the reference workloads, not for the entry point {spec!r}")
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name.isidentifier():
        raise WeightprogError(f"model: use module:function or file.py:function, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise WeightprogError(f"model: file {path} not found")
            found = importlib.util.spec_from_file_location(f"_weightprog_model_{path.stem}", path)
            if found is None or found.loader is None:
                raise WeightprogError(f"model: cannot import {path} (not a Python source file)")
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            with _cwd_importable():
                module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WeightprogError(f"model: cannot import {module_name!r} ({exc})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise WeightprogError(f"model: {module_name!r} has no function {func_name!r}")
    return ModelSpec.of(func(), where=f"model {spec}")
