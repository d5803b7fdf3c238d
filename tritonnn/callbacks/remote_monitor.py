"""Keras' ``RemoteMonitor``, posting with the standard library (``urllib.request``) instead of ``requests``."""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .._process import is_chief
from .callback import Callback


class RemoteMonitor(Callback):
    """Post each epoch's logs to a server (Keras' ``RemoteMonitor``).

    At every epoch end, an HTTP POST goes to ``root + path`` with a JSON object of the epoch's logs and its index
    (``{"epoch": 0, "loss": 0.25, ...}``). By default it is sent as a form, ``<field>=<the JSON, URL-encoded>``
    (``application/x-www-form-urlencoded``); with ``send_as_json=True`` the JSON itself is the body
    (``application/json``, NaN and infinite values refused as invalid JSON, as ``requests`` does). The request is
    the one Keras makes through ``requests``, made with ``urllib.request``: tritonnn needs no extra package.

    A server that cannot be reached (refused, timed out after ``RemoteMonitor.timeout`` seconds, a malformed URL)
    only warns, ``Could not reach RemoteMonitor root server at <root>``, and training goes on; a server that answers
    with an HTTP error status counts as reached, as under Keras. Only rank 0 posts in a data-parallel run.

    Args:
        root: the server's root URL.
        path: the path, relative to ``root``, that the events are posted to.
        field: the form field that holds the JSON (unused when ``send_as_json=True``).
        headers: extra HTTP headers (a dict); a ``Content-Type`` given here replaces the default one.
        send_as_json: send the JSON as the body, as ``application/json``, instead of in a form.
    """

    # How long one request may wait for the server, in seconds (Keras waits without a limit).
    timeout: float = 10.0

    def __init__(
        self,
        root: str = "http://localhost:9000",
        path: str = "/publish/epoch/end/",
        field: str = "data",
        headers: Mapping[str, str] | None = None,
        send_as_json: bool = False,
    ) -> None:
        super().__init__()
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json

    @staticmethod
    def _value(v: Any) -> Any:
        # numpy (and torch) scalars are not JSON types: unwrap them as Keras does.
        if isinstance(v, (np.ndarray, np.generic, torch.Tensor)):
            return v.item()
        return v

    def on_epoch_end(self, epoch, logs=None):
        if not is_chief():
            return
        send = {"epoch": epoch, **{k: self._value(v) for k, v in (logs or {}).items()}}
        if self.send_as_json:
            try:
                body = json.dumps(send, allow_nan=False).encode("utf-8")
            except ValueError:  # NaN or inf: requests refuses it with an InvalidJSONError, which Keras warns about
                self._warn()
                return
            content_type = "application/json"
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        try:
            request = urllib.request.Request(self.root + self.path, data=body, method="POST")
            request.add_header("Content-Type", content_type)
            for key, value in (self.headers or {}).items():
                request.add_header(key, value)
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as e:  # the server answered (requests does not raise for a status either)
            with contextlib.closing(e):
                pass
        except (OSError, http.client.HTTPException, ValueError):  # refused, timed out, reset, a bad URL
            self._warn()

    def _warn(self) -> None:
        warnings.warn(f"Could not reach RemoteMonitor root server at {self.root}", stacklevel=3)


__all__ = ["RemoteMonitor"]
