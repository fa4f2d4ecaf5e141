"""Progress bars for the experiments: a tqdm bar driven by the (done, total) callbacks that the
attacks and trainers call after each epoch."""

from __future__ import annotations

from typing import Any, Callable

from tqdm.auto import tqdm

__all__ = ["ProgressBar", "run_with_bar"]

ProgressCallback = Callable[[int, int], None]


class ProgressBar:
    """A tqdm bar whose callback signature (done, total) fits the attacks' progress hooks."""

    def __init__(self, desc: str, total: int, enabled: bool):
        self.bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run_with_bar(desc: str, total: int, enabled: bool, fn: Callable[[ProgressCallback], Any]) -> Any:
    """``fn(callback)`` with a bar of ``total`` steps shown while it runs (closed afterwards)."""
    bar = ProgressBar(desc, total, enabled)
    try:
        return fn(bar)
    finally:
        bar.close()
