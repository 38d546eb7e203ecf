"""Compose a params profile from a base profile and an overlay (``configs/rehearsal.yaml`` over
``configs/paper.yaml``): mappings merge key by key, everything else (lists, scalars) and the sections named
in the overlay's ``replace:`` list are replaced whole.

Usage: ``python -m pipeline.profiles configs/paper.yaml configs/rehearsal.yaml > params.yaml``
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.params import ParamsError, params_from_dict, parse_yaml

REPLACE_KEY = "replace"
BASE_KEY = "overlay_of"  # the profile an overlay is written against (documentation and tests)


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` over ``base``: mappings recursively, anything else replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for k, v in overlay.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    return overlay


def compose(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """The composed raw params; validated (a ``ParamsError`` names a bad key)."""
    overlay = dict(overlay)
    replace = overlay.pop(REPLACE_KEY, [])
    overlay.pop(BASE_KEY, None)
    out = merge({k: v for k, v in base.items() if k not in replace}, overlay)
    params_from_dict(out)
    return out


def overridden_keys(base: Any, overlay: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value the overlay changes (what the rehearsal differs from the paper in)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out: list[str] = []
        for k, v in overlay.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out += overridden_keys(base.get(k), v, key) if k in base else [key]
        return out
    return [] if base == overlay else [prefix]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        print("profiles: usage: python -m pipeline.profiles BASE.yaml OVERLAY.yaml", file=sys.stderr)
        return 2
    try:
        base, overlay = (parse_yaml(Path(p).read_text()) for p in argv)
        out = compose(base, overlay)
    except (OSError, ParamsError) as e:
        print(f"profiles: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(f"# composed by pipeline.profiles: {argv[1]} over {argv[0]}\n")
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False, width=120))
    return 0


if __name__ == "__main__":
    sys.exit(main())
