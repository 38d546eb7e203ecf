"""Stand-ins for ``pipeline.render_job.render_rows`` run in spawned pool workers.

Kept in a module that imports nothing heavy, so that each fresh worker starts in a fraction of a second.
"""

from __future__ import annotations

import os


def pid_per_source(task: dict) -> list[list[bytes]]:
    """One 'view' per source: the source name and the worker's pid."""
    return [[s.encode(), str(os.getpid()).encode()] for s in task["sources"]]


def die_on_bad(task: dict) -> list[list[bytes]]:
    """A worker killed mid-task (e.g. by the OOM killer) when its task holds the source ``bad``."""
    if "bad" in task["sources"]:
        os._exit(3)
    return pid_per_source(task)
