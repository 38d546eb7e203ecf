"""Compare the data stages' output hashes of two ``dvc.lock`` files (used by scripts/check_data_hashes.sh).

    python scripts/lock_diff.py COMMITTED_LOCK NEW_LOCK STAGE [STAGE ...]

A STAGE names a stage (``synth``) or a foreach group (``sample``: every ``sample@<key>``). Prints one line per
output whose md5 differs (``stage: path: md5 new != committed``) and exits 1; exit 0 when every output of
those stages matches; exit 2 on an unreadable lock.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def outs(lock: dict, stages: list[str]) -> dict[tuple[str, str], str]:
    """``{(stage, output path): md5}`` of the named stages (and their foreach members) in a parsed lock."""
    found: dict[tuple[str, str], str] = {}
    for name, entry in (lock.get("stages") or {}).items():
        if name in stages or name.split("@")[0] in stages:
            for out in entry.get("outs") or []:
                found[(name, out["path"])] = str(out.get("md5"))
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        committed, new = (yaml.safe_load(Path(p).read_text()) or {} for p in argv[:2])
    except (OSError, yaml.YAMLError) as e:
        print(f"lock_diff: cannot read a lock file: {e}", file=sys.stderr)
        return 2
    want, got = outs(committed, argv[2:]), outs(new, argv[2:])
    bad = [f"{s}: {p}: md5 {got.get((s, p), 'missing')} != committed {want.get((s, p), 'missing')}"
           for s, p in sorted(set(want) | set(got)) if want.get((s, p)) != got.get((s, p))]
    for line in bad:
        print(line)
    if not want:
        print(f"lock_diff: no outputs of {argv[2:]} in {argv[0]}")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
