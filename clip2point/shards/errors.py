"""The one error of the shard readers: :class:`ShardError`, whose message names the shard (or manifest)."""

from __future__ import annotations


class ShardError(RuntimeError):
    """A shard cannot be read (missing, truncated, not a tar). The message names the shard."""
