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
    from ..nn.precision import PrecisionTarget
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
    """`load_model_spec_sized` without the test set's size."""
    return load_model_spec_sized(spec, eval_size)[0]


def _workload_name(spec: str) -> tuple[str, str] | None:
    """(name, variant) of a reference workload spec (`NAME` or `NAME@hwa`), else None."""
    from ..workloads import is_workload

    name, _, variant = spec.partition("@")
    return (name, variant or "fp") if is_workload(name) else None


def precision_target(text: str, spec: str) -> PrecisionTarget:
    """`--precision`'s target; refused for an entry point, whose test items cannot be added to."""
    from ..nn.precision import PrecisionTarget

    if _workload_name(spec) is None:
        raise WeightprogError(f"precision: only for the reference workloads, whose test items can be added in "
                              f"rounds; not for the entry point {spec!r} (use --repeats and its own data)")
    return PrecisionTarget.parse(text)


def default_eval_size(spec: str) -> int:
    """A reference workload's first round under `--precision` without `--eval-size`: the study's default."""
    from ..study.settings import DEFAULT_EVAL_SIZE

    found = _workload_name(spec)
    assert found is not None, spec
    return DEFAULT_EVAL_SIZE[found[0]]


def load_model_spec_sized(spec: str, eval_size: int | None = None) -> tuple[ModelSpec, int | None]:
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
    (ModelSpec, int or None)
        The spec, and for a workload the items its test set has (`--precision` adds up to them).

    Raises
    ------
    WeightprogError
        An entry point that cannot be imported, is missing, or returns neither form.
    """
    from ..nn.spec import ModelSpec
    from ..workloads import get_workload

    named = _workload_name(spec)
    if named is not None:
        workload = get_workload(named[0], named[1], eval_size=eval_size)
        return workload.spec(), workload.metadata.get("available")
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
    return ModelSpec.of(func(), where=f"model {spec}"), None
