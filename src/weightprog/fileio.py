"""Output files: written atomically (temp file + rename, so a crash never leaves half a result)
with the user's umask; output folders checked and locked; inputs never overwritten."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import WeightprogError

LOCK_NAME = ".weightprog.lock"
_HELD_LOCKS: dict[str, Any] = {}
"""Open lock files of the output folders this process writes (released when it exits or dies)."""
BEFORE_WRITE: list[Callable[[Path], None]] = []
"""Called with each path before it is written (runfolder.py lists it in its run's manifest)."""


def before_write(path: str | Path) -> None:
    """Tell the hooks that `path` is about to be written (they may refuse: WeightprogError)."""
    for hook in BEFORE_WRITE:
        hook(Path(path))


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc), else set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WeightprogError(f"{folder}: is a file, not a folder; choose another output path") from None
    except OSError as exc:
        raise WeightprogError(f"{folder}: cannot create the output folder ({exc.strerror})") from None


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)`, then move the temp file over `path`.

    The file gets the permissions a plain `open(path, "w")` would (0666 less the umask), not the
    temp file's 0600; a folder that cannot be written is one line naming it."""
    path = Path(path)
    before_write(path)
    _mkdir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WeightprogError(f"{path}: cannot write ({exc.strerror})") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            raise WeightprogError(f"{path}: is a folder; cannot write a file there") from None
        except OSError as exc:
            raise WeightprogError(f"{path}: cannot write ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """Fail now, creating nothing, when `path` cannot become an output folder: an existing file,
    or a place whose nearest existing folder cannot be written (one line naming `option`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WeightprogError(f"{option} {path}: is an existing file, not a folder; choose a folder")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise WeightprogError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WeightprogError(f"{option} {path}: {parent} is not writable")
    return path


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """An output folder, created if missing: an existing file or an unwritable place is one line
    naming `option` and the path."""
    path = check_output_folder(path, option)
    _mkdir(path)
    return path


def lock_folder(path: str | Path, what: str = "weightprog") -> Path:
    """Hold `path/.weightprog.lock` until this process exits, so two runs cannot write one folder.

    An OS lock (flock), so it goes with the process however it ends (kill -9 included): a stale
    lock file never blocks a later run. A second run into a held folder stops with one line
    naming the running process. Taking a lock this process already holds is a no-op."""
    import fcntl

    folder = output_folder(path)
    key = str(folder.resolve())
    if key in _HELD_LOCKS:
        return folder
    lock = folder / LOCK_NAME
    f = open(lock, "a+")  # noqa: SIM115 - held open (the lock) until unlock_folder or the process ends
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise WeightprogError(f"{folder}: {holder} is writing this folder (lock {lock}); wait for it to "
                              f"finish or use another output folder") from None
    f.seek(0)
    f.truncate()
    f.write(f"{what} (pid {os.getpid()} on {socket.gethostname()})")
    f.flush()
    _HELD_LOCKS[key] = f
    return folder


def holds_lock(path: str | Path) -> bool:
    """Whether this process holds the lock of the folder `path`."""
    return str(Path(path).resolve()) in _HELD_LOCKS


def locked_elsewhere(path: str | Path) -> bool:
    """Whether another process holds the lock of the folder `path` (a run writing it now)."""
    import fcntl

    if holds_lock(path):
        return False
    try:
        f = open(Path(path) / LOCK_NAME)  # noqa: SIM115 - closed below, whatever the probe finds
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


def unlock_folder(path: str | Path) -> None:
    """Release a lock taken by `lock_folder` (the lock file stays; it is empty of meaning)."""
    f = _HELD_LOCKS.pop(str(Path(path).resolve()), None)
    if f is not None:
        f.close()


def release_locks() -> None:
    """Release every lock this process holds (the command line, as a command returns: a process
    that runs several commands, as tests do, does not keep their folders' lock files open)."""
    for key in list(_HELD_LOCKS):
        _HELD_LOCKS.pop(key).close()


@contextmanager
def folder_lock(path: str | Path | None, what: str = "weightprog"):
    """`lock_folder` for the duration of a `with` block (nothing for None); a lock this process
    already held (e.g. the CLI's, for the whole command) is left held."""
    if path is None:
        yield None
        return
    held_before = holds_lock(path)
    folder = lock_folder(path, what)
    try:
        yield folder
    finally:
        if not held_before:
            unlock_folder(folder)


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_overwriting_inputs(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path]) -> None:
    """One line when an output path is an input file (or another output): {label: path} each."""
    seen: dict[str, Path] = {}
    for label, out in outputs.items():
        for in_label, src in inputs.items():
            if same_file(out, src):
                raise WeightprogError(f"{label} {out}: is the input {in_label}; writing there would destroy it; "
                                      f"choose another path")
        for other, path in seen.items():
            if same_file(out, path):
                raise WeightprogError(f"{label} {out}: is also {other}; give them different paths")
        seen[label] = Path(out)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, allow_nan=False))


def read_text(path: str | Path, what: str) -> str:
    """A user's text file, or one line naming the file and what it was meant to be."""
    path = Path(path)
    try:
        return path.read_text()
    except OSError as exc:
        raise WeightprogError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise WeightprogError(f"{path}: {what} is not a text file") from None
