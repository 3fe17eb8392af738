"""An output folder as a contract (issue 26). Its command.json (the manifest) is written before any
work: the command as typed, its settings, the version, the start time, the state (`running`, then
`finished` once the last file is in place) and every file the run writes. So a run

- never replaces a file the manifest does not list (refused, naming the file, before any work);
- refuses a rerun whose settings differ from the folder's run, for every setting; `--force` starts
  afresh, removing only the listed files;
- leaves, when interrupted, a folder that says so and says which command to rerun.

Files are listed as they are written: `fileio.atomic_write` asks `_listed` first (a hook), so a
file the library writes deep inside a search (a checkpoint) is listed like the command's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import fileio
from ._version import __version__
from .errors import WeightprogError

MANIFEST = "command.json"
FORMAT = "weightprog.run"
COMMON_OUTPUTS = ("report.html",)
"""Written into every run folder (at the end, by the report)."""


@dataclass
class RunFolder:
    """A run folder this process writes: its path and its manifest (as written)."""

    folder: Path
    manifest: dict[str, Any]
    files: set[str] = field(default_factory=set)

    def write(self) -> None:
        self.manifest["files"] = sorted(self.files)
        fileio.atomic_write_json(self.folder / MANIFEST, self.manifest)


_ACTIVE: dict[Path, RunFolder] = {}


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest; None where there is none; one line where command.json is not one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not (isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("files"), list)):
        raise WeightprogError(f"{path}: exists and is not a run record weightprog wrote; not replaced "
                              f"(move it, or choose another output folder)")
    return data


def _existing(folder: Path, patterns: Iterable[str]) -> list[str]:
    """Files under `folder` matching the glob patterns, relative, sorted."""
    found = {str(p.relative_to(folder)) for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    return sorted(found)


def _settings_change(old: Mapping[str, Any], new: Mapping[str, Any], extents: Iterable[str] = ()) -> str | None:
    """`its run had --pairs 2, this one --pairs 1` for the first differing setting (and the names
    of the others) outside `extents`, or None."""
    free = set(extents)
    differ = [k for k in [*new, *(k for k in old if k not in new)] if old.get(k) != new.get(k) and k not in free]
    if not differ:
        return None

    def shown(key: str, settings: Mapping[str, Any]) -> str:
        value = settings.get(key)
        if isinstance(value, bool) or value is None:  # a flag, or an option left out
            return key if value else f"no {key}"
        return f"{key} {','.join(map(str, value)) if isinstance(value, list) else value}"
    more = f" (also {', '.join(differ[1:])})" if len(differ) > 1 else ""
    return f"its run had {shown(differ[0], old)}, this one {shown(differ[0], new)}{more}"


def _check(folder: Path, kind: str, outputs: Iterable[str], settings: Mapping[str, Any],
           force: bool, extents: Iterable[str] = ()) -> dict[str, Any] | None:
    """Refuse (one line) where the run would replace a file not listed, or rerun other settings."""
    if not folder.is_dir():
        return None
    old = read_manifest(folder)
    listed = set(old["files"]) if old else set()
    foreign = [f for f in _existing(folder, [*outputs, *COMMON_OUTPUTS])
               if f not in listed and f != MANIFEST and not Path(f).name.startswith(".")]  # not temp files
    if foreign:
        raise WeightprogError(f"{folder / foreign[0]}: exists and is not listed in {folder / MANIFEST} as a file "
                              f"weightprog wrote; not replaced (move it, or choose another output folder)")
    if old is None or force or not [f for f in listed if (folder / f).is_file()]:
        return old  # no results to protect (e.g. a run that stopped at a bad input): any settings
    change = (f"its run was `weightprog {old.get('kind')}`" if old.get("kind") != kind
              else _settings_change(old.get("settings", {}), settings, extents))
    if change:
        raise WeightprogError(f"{folder}: {change}; rerun with the same settings to resume, or add --force to "
                              f"start afresh (removes the {len(listed)} file(s) {MANIFEST} lists), or choose "
                              f"another output folder")
    return old


def start_run(folder: str | Path, kind: str, argv: list[str], cwd: str, settings: Mapping[str, Any],
              outputs: Iterable[str], force: bool = False, extents: Iterable[str] = ()) -> RunFolder:
    """Check, lock and claim `folder` for a run of `kind`, and write its manifest, state `running`.

    Parameters
    ----------
    folder
        The output folder (created if missing).
    kind
        The command (`optimize`, `device advise`, ...).
    argv, cwd
        The command line as typed, and where it ran.
    settings
        Everything that shapes the results, as JSON ({option: value}); a rerun must match it.
    outputs
        Glob patterns (relative to `folder`) of the files the run may write: any that exists and is
        not listed in the manifest is refused before any work.
    force
        Start afresh: remove the files the manifest lists (only those) instead of resuming.
    extents
        Settings a rerun may change: those that only say how much of the work to do, where every
        result is kept under its own settings (a study's `--repeats`, `--device`, …); the manifest
        then records the new ones.

    Returns
    -------
    RunFolder
        The run, active until `finish_run`.
    """
    path = fileio.check_output_folder(folder)
    outputs = list(outputs)
    settings = json.loads(json.dumps(settings))  # tuples as lists: compared as they are stored
    _check(path, kind, outputs, settings, force, extents)  # before the lock creates anything in a user's folder
    path = fileio.lock_folder(path, f"weightprog {kind}")
    old = _check(path, kind, outputs, settings, force, extents)  # again, now that no other run can change it
    files = {f for f in (old or {}).get("files", []) if (path / f).is_file()}
    if force:
        for name in sorted(files):
            (path / name).unlink()
        files = set()
    run = RunFolder(path, {"format": FORMAT, "kind": kind, "argv": list(argv), "cwd": cwd, "settings": settings,
                           "version": __version__, "started": _now(), "state": "running"}, files)
    run.write()
    _ACTIVE[path.resolve()] = run
    return run


def finish_run(folder: str | Path) -> None:
    """Mark the run of `folder` (this process's) `finished`: call after its last file is in place."""
    run = _ACTIVE.pop(Path(folder).resolve(), None)
    if run is None:
        return
    run.files = {f for f in run.files if (run.folder / f).is_file()}  # e.g. a retried sweep job's error file
    run.manifest.update(state="finished", finished=_now())
    run.write()


def abandon_runs() -> None:
    """Forget this process's unfinished runs (a command that failed or was interrupted): their
    folders keep state `running`, and read as interrupted from here on too."""
    _ACTIVE.clear()


def list_file(folder: str | Path, name: str) -> None:
    """Add `name` to the manifest of a folder no run is writing now (`weightprog report` rebuilding
    report.html); nothing where the folder has no manifest."""
    folder = Path(folder)
    manifest = _recorded(folder)
    if manifest is None or name in manifest["files"] or folder.resolve() in _ACTIVE:
        return
    RunFolder(folder, manifest, {*manifest["files"], name}).write()


def _recorded(folder: str | Path) -> dict[str, Any] | None:
    """The manifest, or None where there is none or command.json is an older version's record."""
    try:
        return read_manifest(folder)
    except WeightprogError:
        return None


def recorded_kind(folder: str | Path) -> str | None:
    """The command that made `folder`, as its manifest says (`device-advise`), or None."""
    manifest = _recorded(folder)
    return str(manifest["kind"]).replace(" ", "-") if manifest else None


def unfinished(folder: str | Path) -> str | None:
    """What a folder whose run did not finish is (`interrupted`, or `running` in another process);
    None for a finished run, a folder without manifest, or this process's own run (finishing now)."""
    manifest = _recorded(folder)
    if manifest is None or manifest.get("state") == "finished" or Path(folder).resolve() in _ACTIVE:
        return None
    if fileio.locked_elsewhere(folder):
        return f"running since {manifest.get('started')} (another process is writing it)"
    return f"interrupted: the run started {manifest.get('started')} did not finish"


def _listed(path: Path) -> None:
    """`fileio`'s hook before a file is written: inside an active run folder, refuse a file that
    exists unlisted, and list a new one (the manifest first, so a crash never leaves it unlisted)."""
    resolved = path.resolve()
    for root, run in _ACTIVE.items():
        if root not in resolved.parents:
            continue
        name = str(resolved.relative_to(root))
        if name == MANIFEST or name in run.files:
            return
        if path.exists():
            raise WeightprogError(f"{path}: exists and is not listed in {run.folder / MANIFEST} as a file "
                                  f"weightprog wrote; not replaced (move it, or choose another output folder)")
        run.files.add(name)
        run.write()
        return


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


fileio.BEFORE_WRITE.append(_listed)
