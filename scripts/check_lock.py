"""Does the running interpreter's environment hold exactly the packages of requirements.lock?

`make test` runs this first, so results cannot come from a venv that drifted from the lock (an old development
venv, a package installed by hand). Exit 0 when every locked package is installed at its locked version and
nothing else is installed but the project itself; otherwise exit 1 with one line naming the first differences.
`--extras` prints the installed packages the lock does not name, one per line (scripts/setup.sh removes them).

Names compare after PEP 503 normalisation, versions as PEP 440 versions (so a local build label such as `+cpu`
is a difference).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN = 3  # differences named in the one-line message; the rest are counted

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)\s*(;.*)?$")


@dataclass(frozen=True)
class Locked:
    """One requirement of the lock: its exact version and the sha256 hashes of its files."""

    version: str
    hashes: tuple[str, ...]


def normalise(name: str) -> str:
    """The PEP 503 form of a distribution name (runs of `-_.` become one `-`, lower case)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _same_version(a: str, b: str) -> bool:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # a broken venv still gets an answer
        return a == b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def parse_lock(text: str, source: str = "requirements.lock") -> dict[str, Locked]:
    """The requirements of a hashed lock (`name==version \\` lines with `--hash=` continuations), by normalised name.

    Raises ValueError naming the source and the line for anything that is not an exact pin.
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            logical.append(pending.strip())
        pending = ""
    if pending.strip():
        logical.append(pending.strip())
    locked: dict[str, Locked] = {}
    for entry in logical:
        words = entry.split()
        spec = " ".join(w for w in words if not w.startswith("--hash="))
        hashes = tuple(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        match = _REQUIREMENT.match(spec)
        if match is None:
            raise ValueError(f"{source}: not an exact pin: {spec!r}")
        name = normalise(match.group(1))
        if name in locked:
            raise ValueError(f"{source}: {match.group(1)} is locked twice")
        locked[name] = Locked(version=match.group(3), hashes=hashes)
    if not locked:
        raise ValueError(f"{source}: no requirements")
    return locked


def installed() -> dict[str, str]:
    """The distributions visible to this interpreter, by normalised name (the first on sys.path wins, as on import)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalise(name), dist.version)
    return found


def project_name(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The project's own distribution name, installed editable beside the lock and not in it."""
    return normalise(tomllib.loads(pyproject.read_text())["project"]["name"])


def differences(locked: dict[str, Locked], have: dict[str, str], allowed: frozenset[str]) -> list[str]:
    """Each way `have` differs from `locked`, in the lock's order, then the unlocked extras (sorted)."""
    out: list[str] = []
    for name, want in locked.items():
        if name not in have:
            out.append(f"{name} missing ({want.version} locked)")
        elif not _same_version(have[name], want.version):
            out.append(f"{name} {have[name]} installed, {want.version} locked")
    return out + [f"{name} {have[name]} installed, not locked" for name in extras(locked, have, allowed)]


def extras(locked: dict[str, Locked], have: dict[str, str], allowed: frozenset[str]) -> list[str]:
    """Installed names the lock does not hold (other than `allowed`), sorted."""
    return sorted(set(have) - set(locked) - allowed)


def message(diffs: list[str], lock_name: str = "requirements.lock") -> str:
    """The one line `make test` prints for a venv that does not match."""
    shown = "; ".join(diffs[:SHOWN])
    more = f"; and {len(diffs) - SHOWN} more" if len(diffs) > SHOWN else ""
    return f"venv does not match {lock_name}: {shown}{more} (run make setup)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--extras", action="store_true", help="print the installed packages the lock does not name")
    args = parser.parse_args(argv)
    try:
        locked = parse_lock(args.lock.read_text(), str(args.lock))
    except (OSError, ValueError) as err:
        print(f"check_lock: {err}", file=sys.stderr)
        return 1
    allowed = frozenset({project_name()})
    have = installed()
    if args.extras:
        print("\n".join(extras(locked, have, allowed)))
        return 0
    diffs = differences(locked, have, allowed)
    if diffs:
        print(message(diffs, args.lock.name), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
