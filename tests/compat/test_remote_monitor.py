"""``keras.callbacks.RemoteMonitor`` against Keras: the requests it makes, to a real HTTP server on 127.0.0.1 in a
thread (no outside network), and the warning when the server cannot be reached.

Keras posts through ``requests``, which tritonnn does not need (it uses ``urllib.request``). Keras' side is run with
a stand-in ``requests`` module that records each ``post`` call (what Keras asks ``requests`` to send); tritonnn's
side is read off the wire by the server. Where the real ``requests`` is installed, both are also compared on the
wire, byte for byte.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import socket
import threading
import types
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import tritonnn as tk

UNREACHABLE = "Could not reach RemoteMonitor root server at {}"


class Server:
    """An HTTP server on 127.0.0.1 that records every request (method, path, headers, body) and answers ``status``."""

    def __init__(self, status: int = 200):
        self.requests: list[dict] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(
                    dict(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests to 127.0.0.1 go straight there, whatever proxy the environment names."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeRequests(types.ModuleType):
    """What Keras' RemoteMonitor calls ``requests.post`` with; ``fail`` makes every post raise RequestException."""

    class RequestException(OSError):
        pass

    def __init__(self, fail: bool = False):
        super().__init__("requests")
        self.calls: list[dict] = []
        self.fail = fail
        self.exceptions = types.SimpleNamespace(RequestException=FakeRequests.RequestException)

    def post(self, url, data=None, json=None, headers=None):
        self.calls.append(dict(url=url, data=data, json=json, headers=headers))
        if self.fail:
            raise FakeRequests.RequestException("refused")


@pytest.fixture
def keras_requests(keras_ref, monkeypatch):
    def install(fake):
        module = importlib.import_module("keras.src.callbacks.remote_monitor")
        monkeypatch.setattr(module, "requests", fake)
        return fake

    return install


LOGS = {"loss": 0.25, "accuracy": np.float32(0.5), "lr": np.array(1e-3, dtype="float32"), "name": "run 1 & 2"}


def expected_send(epoch, logs):
    return {"epoch": epoch, **{k: v.item() if isinstance(v, (np.ndarray, np.generic)) else v for k, v in logs.items()}}


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(path="/events", field="payload", headers={"X-Run": "abc"}),
        dict(send_as_json=True),
        dict(send_as_json=True, headers={"Authorization": "Bearer t0k", "Content-Type": "text/plain"}),
    ],
    ids=["form", "form_custom", "json", "json_headers"],
)
def test_the_request_is_the_one_keras_asks_for(keras_ref, keras_requests, server, kwargs):
    fake = keras_requests(FakeRequests())
    keras_ref.callbacks.RemoteMonitor(root=server.root, **kwargs).on_epoch_end(3, dict(LOGS))
    tk.callbacks.RemoteMonitor(root=server.root, **kwargs).on_epoch_end(3, dict(LOGS))
    (call,) = fake.calls
    (got,) = server.requests
    assert server.root + got["path"] == call["url"] == server.root + kwargs.get("path", "/publish/epoch/end/")
    assert got["method"] == "POST"
    for key, value in (call["headers"] or {}).items():  # the caller's headers are sent, and win
        assert got["headers"][key.lower()] == value
    if kwargs.get("send_as_json"):
        assert call["data"] is None and call["json"] == expected_send(3, LOGS)
        assert got["body"] == json.dumps(call["json"], allow_nan=False).encode()  # requests' encoding of json=
        if "Content-Type" not in (call["headers"] or {}):
            assert got["headers"]["content-type"] == "application/json"
    else:
        field = kwargs.get("field", "data")
        assert call["json"] is None and list(call["data"]) == [field]
        assert json.loads(call["data"][field]) == expected_send(3, LOGS)
        assert got["body"] == urllib.parse.urlencode(call["data"]).encode()  # requests' encoding of a dict
        assert urllib.parse.parse_qs(got["body"].decode()) == {field: [call["data"][field]]}
        assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("send_as_json", [False, True], ids=["form", "json"])
def test_on_the_wire_with_real_requests(keras_ref, server, monkeypatch, send_as_json):
    """Where ``requests`` is installed: Keras' request and tritonnn's, byte for byte (but the client's own
    headers: User-Agent, Accept, Accept-Encoding, Connection)."""
    requests = pytest.importorskip("requests", reason="the byte-for-byte comparison needs requests, which Keras uses")
    monkeypatch.setattr(importlib.import_module("keras.src.callbacks.remote_monitor"), "requests", requests)
    kwargs = dict(root=server.root, headers={"X-Run": "abc"}, send_as_json=send_as_json)
    keras_ref.callbacks.RemoteMonitor(**kwargs).on_epoch_end(1, dict(LOGS))
    tk.callbacks.RemoteMonitor(**kwargs).on_epoch_end(1, dict(LOGS))
    ref, got = server.requests
    client = {"user-agent", "accept", "accept-encoding", "connection", "host"}
    assert (got["path"], got["body"]) == (ref["path"], ref["body"])
    assert {k: v for k, v in got["headers"].items() if k not in client} == {
        k: v for k, v in ref["headers"].items() if k not in client
    }


def test_an_unreachable_server_only_warns_as_in_keras(keras_ref, keras_requests, closed_port):
    root = f"http://127.0.0.1:{closed_port}"
    keras_requests(FakeRequests(fail=True))
    with pytest.warns(UserWarning) as ref:
        keras_ref.callbacks.RemoteMonitor(root=root).on_epoch_end(0, {"loss": 1.0})
    with pytest.warns(UserWarning) as got:
        tk.callbacks.RemoteMonitor(root=root).on_epoch_end(0, {"loss": 1.0})
    assert [str(w.message) for w in got] == [str(w.message) for w in ref] == [UNREACHABLE.format(root)]
    assert got[0].filename == __file__  # stacklevel: the warning points at the caller of on_epoch_end


@pytest.mark.parametrize(
    "root, path",
    [("127.0.0.1:9", "/x"), ("http://127.0.0.1:{port}", "/x"), ("http://[::1", "/x")],
    ids=["no_scheme", "refused", "malformed"],
)
def test_what_cannot_be_reached_warns(closed_port, root, path):
    root = root.format(port=closed_port)
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server at"):
        tk.callbacks.RemoteMonitor(root=root, path=path).on_epoch_end(0, {"loss": 1.0})


def test_a_server_that_does_not_answer_times_out_and_warns(monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # connections are queued, never answered
        cb = tk.callbacks.RemoteMonitor(root=f"http://127.0.0.1:{listener.getsockname()[1]}")
        monkeypatch.setattr(cb, "timeout", 0.2)
        with pytest.warns(UserWarning, match="Could not reach RemoteMonitor"):
            cb.on_epoch_end(0, {"loss": 1.0})


def test_an_http_error_status_is_a_reached_server(keras_ref):
    """requests does not raise for a 4xx/5xx answer, so Keras does not warn: neither does tritonnn."""
    s = Server(status=500)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tk.callbacks.RemoteMonitor(root=s.root).on_epoch_end(0, {"loss": 1.0})
        assert len(s.requests) == 1
    finally:
        s.close()


def test_nan_in_json_mode_warns_and_form_mode_sends_it(server):
    """requests refuses NaN in a JSON body (InvalidJSONError, a RequestException: Keras warns); in a form, Keras'
    json.dumps writes it as NaN."""
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor"):
        tk.callbacks.RemoteMonitor(root=server.root, send_as_json=True).on_epoch_end(0, {"loss": math.nan})
    assert server.requests == []
    tk.callbacks.RemoteMonitor(root=server.root).on_epoch_end(0, {"loss": math.nan})
    (got,) = server.requests
    assert urllib.parse.parse_qs(got["body"].decode()) == {"data": ['{"epoch": 0, "loss": NaN}']}


def make_model(K):
    K.utils.set_random_seed(0)
    model = K.Sequential([K.Input((3,)), K.layers.Dense(2, activation="relu"), K.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def test_fit_posts_every_epoch_as_keras(keras_ref, keras_requests, server):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    fake = keras_requests(FakeRequests())
    make_model(keras_ref).fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        validation_split=0.25,
        verbose=0,
        callbacks=[keras_ref.callbacks.RemoteMonitor(root=server.root, send_as_json=True)],
    )
    history = make_model(tk).fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        validation_split=0.25,
        verbose=0,
        callbacks=[tk.callbacks.RemoteMonitor(root=server.root, send_as_json=True)],
    )
    ref = [c["json"] for c in fake.calls]
    got = [json.loads(r["body"]) for r in server.requests]
    assert [list(d) for d in got] == [list(d) for d in ref]  # epoch first, then the logs' keys in Keras' order
    assert [d["epoch"] for d in got] == [0, 1, 2]
    for d in got:
        assert all(isinstance(v, float) for k, v in d.items() if k != "epoch")
    assert [d["loss"] for d in got] == pytest.approx(history.history["loss"], rel=1e-6)


def test_fit_goes_on_when_the_server_is_unreachable(closed_port):
    x = np.ones((8, 3), dtype="float32")
    root = f"http://127.0.0.1:{closed_port}"
    with pytest.warns(UserWarning) as caught:
        history = make_model(tk).fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[tk.callbacks.RemoteMonitor(root)])
    assert len(history.history["loss"]) == 2
    assert [str(w.message) for w in caught if "RemoteMonitor" in str(w.message)] == [UNREACHABLE.format(root)] * 2


def test_signature_and_attributes_are_keras(keras_ref):
    def params(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]

    assert params(tk.callbacks.RemoteMonitor) == params(keras_ref.callbacks.RemoteMonitor)
    kwargs = dict(root="http://h:1", path="/p", field="f", headers={"a": "b"}, send_as_json=True)
    ref, got = keras_ref.callbacks.RemoteMonitor(**kwargs), tk.callbacks.RemoteMonitor(**kwargs)
    assert {k: getattr(got, k) for k in kwargs} == {k: getattr(ref, k) for k in kwargs}
    assert isinstance(got, tk.callbacks.Callback)
