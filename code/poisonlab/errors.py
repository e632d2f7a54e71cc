"""The two errors an experiment reports: a bad parameter value, and training that diverged."""
from __future__ import annotations

import math


class ParameterError(ValueError):
    """A bad value for one named parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


class DivergenceError(RuntimeError):
    """Training diverged (its loss grew by train.GROWTH or became non-finite) or a metric is non-finite.

    Carries the offending configurations and, when known, the parameter to blame (`name`, e.g. "lr")
    with the learning rate and the losses at the start and the end of training.
    """

    def __init__(self, message: str, configs: list[dict] | None = None, *, name: str | None = None,
                 lr: float | None = None, start: float | None = None, final: float | None = None):
        super().__init__(message)
        self.configs = configs or []
        self.name, self.lr, self.start, self.final = name, lr, start, final
        self.hint: str | None = None  # what would be stable, where an experiment knows it

    def line(self) -> str:
        """One line for the command line: the learning rate, how the loss grew, what would be stable."""
        if self.lr is None:
            return str(self).splitlines()[0] if str(self) else "training diverged"
        if self.start is not None and self.final is not None and math.isfinite(self.final):
            how = f"loss grew from {self.start:.3g} to {self.final:.3g}"
        else:
            how = "loss or parameters became non-finite"
        flag = "--" + (self.name or "lr").replace("_", "-")
        return f"{flag} {self.lr:g} diverged ({how})" + (f"; {self.hint}" if self.hint else "")
