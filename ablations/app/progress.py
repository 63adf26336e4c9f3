"""Progress display: rich bars on a terminal, plain log lines otherwise.

The sweep bar shows trials done / total with an ETA; the trial bar shows epoch, step, loss,
lr and throughput. ``train()`` only calls ``start/step/epoch/log`` on the trial object.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _fmt_row(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}", f"lr {row['lr']:.3g}"]
    if row.get("val_top1") is not None:
        parts += [f"val_top1 {row['val_top1']:.2f}", f"val_loss {row['val_loss']:.4f}"]
    parts.append(f"{row['img_per_s']:.0f} img/s")
    return ", ".join(parts)


def _step_info(loss: float | None, lr: float, img_s: float | None, lr_fmt: str) -> str:
    if loss is None or img_s is None:  # nothing read yet: say so rather than "nan, 0 img/s"
        return f"lr {lr:{lr_fmt}} (loss and img/s at the first read)"
    return f"loss {loss:.4f} lr {lr:{lr_fmt}} {img_s:.0f} img/s"


class PlainProgress:
    """Log lines (for files, CI, worker processes): per epoch, and a step line every N s."""

    def __init__(self, total: int = 0, done: int = 0, stream: TextIO | None = None) -> None:
        self.total, self.done = total, done
        self.stream = stream or sys.stdout
        self.name, self.epochs, self.every_s = "", 0, 30.0
        self._last = 0.0

    def _print(self, msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=self.stream, flush=True)

    def message(self, msg: str) -> None:
        self._print(msg)

    def set_done(self, done: int, total: int | None = None) -> None:
        self.total = total if total is not None else self.total
        if done != self.done:
            self.done = done
            self._print(f"sweep: {done}/{self.total} trials done")

    def start(self, name: str, epochs: int, steps_per_epoch: int, pos: Any = None) -> None:
        self.name, self.epochs, self._last = name, epochs, time.monotonic()
        at = (
            f" (resuming at epoch {pos.epoch + 1}, step {pos.step_in_epoch})"  # 1-based, as logged
            if pos and pos.global_step
            else ""
        )
        unit = "epoch" if epochs == 1 else "epochs"
        self._print(f"{name}: {epochs} {unit} x {steps_per_epoch} steps{at}")

    def step(
        self, epoch: int, step: int, loss: float | None, lr: float, img_s: float | None
    ) -> None:
        """``loss``/``img_s``: None until the first read of the device tally (train.log_every)."""
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._print(f"{self.name}: epoch {epoch + 1}/{self.epochs} step {step} "
                        f"{_step_info(loss, lr, img_s, '.3g')}")  # fmt: skip

    def epoch(self, row: dict[str, Any]) -> None:
        self._last = time.monotonic()
        self._print(f"{self.name}: {_fmt_row(row)}")

    def log(self, msg: str) -> None:
        self._print(f"{self.name}: {msg}")

    def close(self) -> None:
        pass


class RichProgress(PlainProgress):
    """Two rich bars: the sweep (trials, ETA) and the current trial (steps)."""

    def __init__(self, total: int = 0, done: int = 0, stream: TextIO | None = None) -> None:
        super().__init__(total, done, stream)
        import rich.progress as rp
        from rich.console import Console

        self.bars = rp.Progress(
            rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
            rp.TimeElapsedColumn(), rp.TextColumn("eta"), rp.TimeRemainingColumn(),
            rp.TextColumn("{task.fields[info]}"), console=Console(file=self.stream),
        )  # fmt: skip
        self.bars.start()
        self.sweep = self.bars.add_task("sweep", total=max(total, 1), completed=done, info="")
        self.trial = None

    def message(self, msg: str) -> None:
        self.bars.console.log(msg)

    def set_done(self, done: int, total: int | None = None) -> None:
        self.total, self.done = (total if total is not None else self.total), done
        self.bars.update(self.sweep, completed=done, total=max(self.total, 1))

    def start(self, name: str, epochs: int, steps_per_epoch: int, pos: Any = None) -> None:
        self.name, self.epochs = name, epochs
        if self.trial is not None:
            self.bars.remove_task(self.trial)
        done = pos.global_step if pos else 0
        self.trial = self.bars.add_task(
            name, total=epochs * steps_per_epoch, completed=done, info=""
        )

    def step(
        self, epoch: int, step: int, loss: float | None, lr: float, img_s: float | None
    ) -> None:
        info = f"epoch {epoch + 1}/{self.epochs} step {step} {_step_info(loss, lr, img_s, '.2e')}"
        self.bars.update(self.trial, advance=1, info=info)

    def epoch(self, row: dict[str, Any]) -> None:
        if row.get("val_top1") is not None:
            self.bars.console.log(f"{self.name}: {_fmt_row(row)}")

    def log(self, msg: str) -> None:
        self.bars.console.log(f"{self.name}: {msg}")

    def close(self) -> None:
        self.bars.stop()


def make_progress(total: int = 0, done: int = 0, plain: bool | None = None) -> PlainProgress:
    """Rich bars when stdout is a terminal (and ``plain`` is not forced), else log lines."""
    if plain is None:
        plain = not sys.stdout.isatty()
    return PlainProgress(total, done) if plain else RichProgress(total, done)
