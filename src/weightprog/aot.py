"""The fused kernels built ahead of time (AOTInductor) and kept on disk, so that a fresh process
runs them without `torch.compile`.

`torch.compile` traces a kernel's Python in every new process (dynamo: its import alone ~1.6 s,
then tracing and loading the cached code): the issue's hidden CNN from the command line spent
6.5–10 s of its 10 analogue passes on it (benchmarks/RESULTS.md). Here each kernel is exported once
per machine for a call's signature (which arguments are tensors or None, their dtypes, ranks,
size-1 dimensions and order in memory, the constants, torch's thread count; sizes up to
`FIXED_UP_TO` built in, the others free), compiled by
AOTInductor into a shared library under `cache_dir()`, and loaded in later processes in about a
millisecond by torch's own runner (`torch._C._aoti`), with no dynamo. The generated code is the
one `torch.compile` would run, so the values are the compiled kernels' (tests compare them with the
eager code). A build takes seconds to a minute; one that fails leaves the call to `torch.compile`.

A process-wide choice (where its files go, builds of a minute on a miss), so the library never
makes it: the command line and the local workers of sweeps and studies call `use_kernel_cache`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fileio import atomic_write_json

if TYPE_CHECKING:
    import torch

ENV = "WEIGHTPROG_KERNEL_CACHE"
"""Where the built kernels go when set (default: $XDG_CACHE_HOME or ~/.cache, then weightprog/kernels)."""
FIXED_UP_TO = 8
"""Sizes up to this are built in (a weight's 2P devices, a layer's input tiles): the generated code
then knows the strides they make (`benchmarks/bench_kernels.py --built-kernels`: the read of 10.4 M
devices 40.5 ms with its devices' count free against 36.3 ms compiled, and 36.2 ms with it built in
against 36.4 ms compiled); another size is another build."""
Returns = str | list[bool]
"""What a kernel returns: "tensor" (one), or per item of its tuple whether it is a tensor (else None)."""
_SOURCES = ("nn/fused.py", "nn/noise.py", "nn/crossbar.py")
"""The files whose code the kernels trace: a change to any of them builds anew."""


@dataclass
class _Process:
    """This process's use of the built kernels."""

    folder: Path | None = None
    """Where they are kept; None: not used (the library's default)."""
    report: Callable[[str], None] | None = None
    runners: dict[str, list] = field(default_factory=dict)
    """Per key, the loaded libraries: (spec, runner, what it returns)."""
    failed: set[str] = field(default_factory=set)
    """Keys that could not be built or run: compiled from then on."""
    calls: dict[tuple, tuple[Any, Returns] | None] = field(default_factory=dict)
    """Per call signature (`_signature`) seen, its library (None: compiled instead)."""


_process = _Process()
MAX_CALLS = 10_000
"""Call signatures remembered (a model whose inputs change size in every batch would add one per size)."""


def cache_dir() -> Path:
    """The folder of built kernels: $WEIGHTPROG_KERNEL_CACHE, else the user's cache folder."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "weightprog" / "kernels"


def use_kernel_cache(folder: str | Path | None = None, report: Callable[[str], None] | None = None) -> None:
    """From now on in this process, the fused kernels run from libraries built ahead of time in
    `folder` (default `cache_dir()`), built there on a miss; `report` gets a line per build."""
    chosen = Path(folder) if folder is not None else cache_dir()
    if chosen != _process.folder:  # libraries of another folder are not this one's
        _process.runners.clear()
        _process.calls.clear()
    _process.folder, _process.report = chosen, report


def enabled() -> bool:
    return _process.folder is not None


@dataclass(frozen=True)
class _Call:
    """A call's arguments split into its tensors (in order) and a template that puts them back:
    per argument ("t",) a tensor, ("list", n) a list of n tensors, ("c", value) a constant."""

    tensors: list[torch.Tensor]
    template: tuple

    @classmethod
    def of(cls, args: tuple) -> _Call | None:
        import torch

        template: list[tuple] = []
        for a in args:
            if isinstance(a, torch.Tensor):
                template.append(("t",))
            elif isinstance(a, list) and a and all(isinstance(x, torch.Tensor) for x in a):
                template.append(("list", len(a)))
            elif a is None or isinstance(a, (bool, int, float, str)) or (
                    isinstance(a, tuple) and all(isinstance(x, int) for x in a)):
                template.append(("c", a))
            else:
                return None
        tensors = _flat(args)
        if any(t.device.type != "cpu" or _layout(t) is None for t in tensors):
            return None  # a layout with gaps or overlaps: torch.compile takes it
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return None  # the library computes no gradient
        return cls(_detached(tensors), tuple(template))

    def rebuild(self, tensors) -> list:
        args, i = [], 0
        for entry in self.template:
            if entry[0] == "t":
                args.append(tensors[i])
                i += 1
            elif entry[0] == "list":
                args.append(list(tensors[i:i + entry[1]]))
                i += entry[1]
            else:
                args.append(entry[1])
        return args

    def key(self, fn: Callable, dynamic: bool) -> str:
        """The build's key: everything the generated library depends on but the sizes > 1."""
        import torch

        shapes = [(str(t.dtype), [s == 1 for s in t.shape], _layout(t)) for t in self.tensors]
        text = json.dumps([fn.__qualname__, dynamic, _source_digest(), torch.__version__,
                           torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(),
                           [list(e) if e[0] != "c" else ["c", repr(e[1])] for e in self.template], shapes])
        return f"{fn.__name__.strip('_')}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def _layout(t: torch.Tensor) -> list[int] | None:
    """The order of `t`'s dimensions in memory, outermost first, where it is dense (no gaps, no
    overlaps: row-major, or channels-last and its flattened views), else None. The generated code
    is built for one order."""
    strides = t.stride()
    order = sorted(range(t.dim()), key=lambda i: (-strides[i], i))
    step = 1
    for i in reversed(order):
        if t.shape[i] != 1 and strides[i] != step:
            return None
        step *= t.shape[i]
    return order


@functools.cache
def _source_digest() -> str:
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in _SOURCES)).hexdigest()


def run(fn: Callable, args: tuple, dynamic: bool = True) -> Any:
    """`fn(*args)` by its library built ahead of time (built now on a miss; `dynamic`: the sizes
    above `FIXED_UP_TO` free, else every size built in), or None where that cannot be had (the
    caller then compiles it): what `fn` returns (a tensor, or a tuple of tensors and Nones)."""
    seen = _signature(fn, dynamic, args)
    if seen is not None and seen in _process.calls:  # a call like one before: its library, no key to compute
        runner = _process.calls[seen]
        return None if runner is None else _output(runner, _detached(_flat(args)))
    call = _Call.of(args)
    runner, out = (None, None) if call is None else _first_run(fn, call, dynamic)
    if seen is not None and len(_process.calls) < MAX_CALLS:
        _process.calls[seen] = runner
    return out


def _first_run(fn: Callable, call: _Call, dynamic: bool) -> tuple[tuple[Any, Returns] | None, Any]:
    """The library for this call (loaded, or built now) and its output, or (None, None), with a
    warning where it failed."""
    key = call.key(fn, dynamic)
    if key in _process.failed:
        return None, None
    try:
        runner = _find(key, [list(t.shape) for t in call.tensors]) or _build(fn, call, key, dynamic)
        if runner is not None:
            return runner, _output(runner, call.tensors)
    except Exception as e:  # an op it cannot export or compile, a damaged library: torch.compile takes it
        warnings.warn(f"periphery: {fn.__name__} not run built ahead of time ({type(e).__name__}: {e}); "
                      f"compiling it in this process instead", stacklevel=4)
    _process.failed.add(key)  # or built for other sizes than these (a constraint export found)
    return None, None


def _output(runner: tuple[Any, Returns], tensors: list) -> Any:
    library, returns = runner
    out = library.run(tensors)
    if returns == "tensor":
        return out[0]
    given = iter(out)
    return tuple(next(given) if present else None for present in returns)


def _signature(fn: Callable, dynamic: bool, args: tuple) -> tuple | None:
    """What decides a call's library, exactly (shapes, strides, dtypes, constants, threads, grad
    mode): a call with the same signature runs the same one. None where an argument is not hashable."""
    import torch

    parts: list = [fn, dynamic, torch.get_num_threads(), torch.is_grad_enabled()]
    for a in args:
        if isinstance(a, torch.Tensor):
            parts.append((a.shape, a.stride(), a.dtype, a.device, a.requires_grad))
        elif isinstance(a, list):
            if not all(isinstance(t, torch.Tensor) for t in a):
                return None
            parts.append(tuple((t.shape, t.stride(), t.dtype, t.device, t.requires_grad) for t in a))
        else:
            parts.append(a)
    try:
        hash(tuple(parts))
    except TypeError:
        return None
    return tuple(parts)


def _flat(args: tuple) -> list[torch.Tensor]:
    """A call's tensors in order: each tensor argument, each list of them in turn."""
    import torch

    out: list = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, list):
            out += a
    return out


def _detached(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors as the library takes them: a layer's parameters (under no_grad) detached."""
    return [t.detach() if t.requires_grad else t for t in tensors]


def _matches(spec: list[list], sizes: list[list[int]]) -> bool:
    """Whether a build's input sizes (an int where it is fixed, a symbol's name where free) admit
    `sizes`: fixed sizes equal, one symbol one size."""
    if len(spec) != len(sizes) or any(len(a) != len(b) for a, b in zip(spec, sizes)):
        return False
    bound: dict[str, int] = {}
    for dims, given in zip(spec, sizes):
        for d, n in zip(dims, given):
            if isinstance(d, int):
                if d != n:
                    return False
            elif bound.setdefault(d, n) != n:
                return False
    return True


def _index(key: str) -> Path:
    assert _process.folder is not None
    return _process.folder / f"{key}.json"


def _find(key: str, sizes: list[list[int]]) -> tuple[Any, Returns] | None:
    """A loaded library of `key` whose sizes admit these, loading a built one from disk."""
    for spec, library, returns in _process.runners.get(key, []):
        if _matches(spec, sizes):
            return library, returns
    assert _process.folder is not None
    for b in _builds(key):
        path = _process.folder / b["library"]
        if _matches(b["spec"], sizes) and path.is_file():
            return _load(key, b["spec"], path, b["returns"])
    return None


def _builds(key: str) -> list[dict]:
    """The key's index: its builds, each {library, spec, returns}; [] where there is none (or it is
    damaged: its builds are made again)."""
    try:
        builds = json.loads(_index(key).read_text())
    except (OSError, ValueError):
        return []
    fields = {"library", "spec", "returns"}
    return [b for b in builds if isinstance(b, dict) and fields <= b.keys()] if isinstance(builds, list) else []


def _load(key: str, spec: list, path: Path, returns: Returns) -> tuple[Any, Returns]:
    import torch

    library = torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1)
    _process.runners.setdefault(key, []).append((spec, library, returns))
    return library, returns


def _build(fn: Callable, call: _Call, key: str, dynamic: bool) -> tuple[Any, Returns] | None:
    """Export `fn` for this call's signature (`dynamic`: every size above `FIXED_UP_TO` free unless
    the code fixes it), compile it by AOTInductor, keep its library under the cache folder and list
    it in the key's index (written atomically; two processes building at once each keep their own)."""
    import torch
    import torch._inductor  # the build alone needs dynamo and inductor

    with torch.no_grad():  # what fn returns, from one eager call: a tensor, or a tuple of tensors and Nones
        given = fn(*call.rebuild(call.tensors))
    returns: Returns = "tensor" if isinstance(given, torch.Tensor) else [x is not None for x in given]

    class Bound(torch.nn.Module):  # fn over the call's tensors alone (the constants fixed), a flat tuple out
        def forward(self, tensors: list[torch.Tensor]):
            out = fn(*call.rebuild(tensors))
            return (out,) if returns == "tensor" else tuple(x for x in out if x is not None)

    folder = _index(key).parent
    if _process.report is not None:
        _process.report(f"building the periphery's {fn.__name__.strip('_')} kernel for this machine, once "
                        f"(about 10-30 s; kept in {folder})")
    auto = torch.export.Dim.AUTO
    free = ([{i: auto for i, s in enumerate(t.shape) if s > FIXED_UP_TO} or None for t in call.tensors],)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations inside export
        exported = torch.export.export(Bound(), (list(call.tensors),), dynamic_shapes=free if dynamic else None,
                                       strict=True)
    spec = [[_size(d) for d in node.meta["val"].shape] for node in exported.graph.nodes if node.op == "placeholder"]
    if any(isinstance(d, str) and not d.isidentifier() for dims in spec for d in dims):
        raise RuntimeError(f"input sizes tied by expressions ({spec})")  # `_matches` checks symbols only
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        package = torch._inductor.aoti_compile_and_package(exported, package_path=os.path.join(tmp, "k.pt2"))
        with zipfile.ZipFile(package) as z:
            names = [n for n in z.namelist() if n.endswith(".so")]
            if len(names) != 1:
                raise RuntimeError(f"the package holds {len(names)} libraries, not one")
            library = f"{key}-{hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:8]}.so"
            with z.open(names[0]) as src, open(os.path.join(tmp, library), "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(os.path.join(tmp, library), folder / library)
    builds = [b for b in _builds(key) if b["library"] != library] + [{"library": library, "spec": spec,
                                                                     "returns": returns}]
    atomic_write_json(_index(key), builds)
    if not _matches(spec, [list(t.shape) for t in call.tensors]):
        return None
    return _load(key, spec, folder / library, returns)


def _size(d) -> int | str:
    """An exported input's size: an int where it is fixed (a constant symbol too, e.g. a weight's
    four devices that the code loops over), else its symbol's name."""
    text = str(d)
    return int(text) if text.isdigit() else text
