"""Per-phase step timings that mean the same on a CPU and a GPU, without a host sync per step.

A training step is cut into phases by marks (``data`` wait, depth ``render``, ``forward_backward``,
``optimizer``). On CUDA a mark records a CUDA event on the current stream, so a phase's time is the GPU
timeline between two marks (for the data wait: the time the GPU sat idle while the host waited for the
DataLoader); the events are read, with one synchronisation, only when :meth:`PhaseTimer.flush` is called
(the loop's logging points). On a CPU a mark is ``time.perf_counter()`` (the work is synchronous there).
"""

from __future__ import annotations

import time

import torch

PHASES = ("data", "render", "forward_backward", "optimizer")


class PhaseTimer:
    """Accumulates the seconds spent in each phase of :data:`PHASES` over the steps it has seen."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.totals = dict.fromkeys(PHASES, 0.0)
        self._steps: list[list] = []  # pending marks (events or floats), one list per step
        self._current: list = []

    def _now(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def start(self) -> None:
        """Mark the start of a step (before waiting for its batch)."""
        self._current = [self._now()]

    def mark(self) -> None:
        """Mark the end of the next phase of the current step."""
        self._current.append(self._now())
        if len(self._current) == len(PHASES) + 1:
            self._steps.append(self._current)
            self._current = []

    def flush(self) -> dict[str, float]:
        """Add the pending steps' phase times to :attr:`totals` (one device sync on CUDA); returns the
        pending steps' own totals."""
        window = dict.fromkeys(PHASES, 0.0)
        if self._steps and self.cuda:
            self._steps[-1][-1].synchronize()
        for marks in self._steps:
            for i, name in enumerate(PHASES):
                a, b = marks[i], marks[i + 1]
                window[name] += a.elapsed_time(b) / 1000.0 if self.cuda else b - a
        self._steps = []
        for k, v in window.items():
            self.totals[k] += v
        return window
