"""Callbacks of the training loop: Ctrl-C stops at the end of a step with a checkpoint."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from fastnst.training.checkpoints import last_good


class StopRequested(KeyboardInterrupt):
    """Raised by `StopOnCtrlC` at the end of a step, after a Ctrl-C asked for it."""


class StopOnCtrlC(pl.Callback):
    """Ctrl-C (or SIGTERM) ends the run at the end of the current step and writes `last.ckpt`
    there.

    The checkpoint is taken where Lightning takes its periodic ones (a step's
    `on_train_batch_end`), never mid-step: the weights, optimizer and loop counters agree, so a
    resumed run goes on at exactly that step. Under DDP the ranks agree on the step to stop at.
    A second Ctrl-C stops at once and writes nothing; the newest periodic checkpoint is then the
    one to resume from. Lightning ends the process with exit status 1 either way.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a handler that prints can interrupt a print (reentrant call)
        os.write(2, b"\nfastnst-train: Ctrl-C: stopping at the end of this step"
                    b" (Ctrl-C again to stop at once, without a checkpoint)\n")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            # A signal the process ignores (SIGINT of a background job) stays ignored.
            self._previous = {s: signal.signal(s, self._on_signal)
                              for s in (signal.SIGINT, signal.SIGTERM)
                              if signal.getsignal(s) is not signal.SIG_IGN}

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # mid-accumulation: not a step boundary
        stop = self.requested
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            raise StopRequested

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        try:
            self._save(trainer, exception)
        finally:  # after the save: Lightning ignores Ctrl-C while it shuts down
            self._restore()

    def _save(self, trainer: pl.Trainer, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        if isinstance(exception, StopRequested):
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, self.path)
            print(f"fastnst-train: interrupted at step {trainer.global_step}; checkpoint"
                  f" {self.path}; continue with resume=true", file=sys.stderr)
        else:
            print(f"fastnst-train: stopped mid-step at step {trainer.global_step}; nothing"
                  f" saved. {last_good(self.path, 'continue with resume=true')}",
                  file=sys.stderr)
