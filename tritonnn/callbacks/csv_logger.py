"""Keras' ``CSVLogger``."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from typing import Any, TextIO

import numpy as np

from .._process import is_chief
from .callback import Callback


class CSVLogger(Callback):
    """Stream the epoch logs to a CSV file (Keras' ``CSVLogger``): a header ``epoch,<sorted log keys>``, then one
    row per epoch; a key missing from a later epoch is written as ``NA``.

    Args:
        filename: the CSV file, e.g. ``"run/log.csv"``.
        separator: the string that separates fields.
        append: append to an existing file (no second header), rather than overwrite it.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise ValueError(f"Expected `filename` to be a str or os.PathLike. Received: filename={filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"Expected `separator` to be a one-character string. Received: separator={separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self.writer: csv.DictWriter | None = None
        self.append_header = True
        self.csv_file: TextIO | None = None

    def on_train_begin(self, logs=None):
        if not is_chief():  # rank 0 alone writes the file in a data-parallel run
            return
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)  # noqa: SIM115 (open across epochs, closed in on_train_end)
        self.writer = None
        self.keys = None

    @staticmethod
    def _handle_value(v: Any) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, np.ndarray) and v.ndim == 0:
            return v
        if isinstance(v, Iterable):
            return f'"[{", ".join(map(str, v))}]"'
        return v

    def on_epoch_end(self, epoch, logs=None):
        if not is_chief():
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            sep = self.sep

            class _Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=_Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{k: self._handle_value(logs.get(k, "NA")) for k in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


__all__ = ["CSVLogger"]
