"""bfgg's Locust plugin: streams every request Locust makes to the bfgg node.

Written out by the node at run time and loaded ahead of the user's
locustfile (`locust -f bfgg_plugin.py,locustfile.py`); it defines no User
class, so the locustfile runs unchanged. Every Locust process (the local
runner, or the master and each worker with `--processes`) opens one
connection to the node's Unix socket (`BFGG_SOCKET`), says who it is, and
then sends batches of fixed-size binary records, one per request, at least
every `FLUSH_S` seconds: the node records them in HDR histograms at full
precision (Locust's own statistics round response times to ~2 significant
digits) and ships one interval per second, like its own engine.

Frames to the node: a 1-byte kind and a 4-byte little-endian length, then
the payload (see node/src/engine/locust/wire.rs, which decodes them):

    HELLO  json: {"token", "pid", "role", "locust", "python"}
    NAME   u16 id, utf-8 request name (interned: sent once per name)
    ERROR  u16 id, utf-8 failure message (interned, addresses stripped)
    BATCH  u32 users running in this process (0xFFFFFFFF: a master, which
           runs none), then records of <HHQII: name id, error id (0 = ok),
           end of the request (Unix time, us), response time (us),
           response length (bytes)

Lines from the node (JSON): {"t0_ms": ...} the run's time zero, which the
local runner or master waits for before Locust starts its users;
{"users": n, "spawn_rate": r}, this agent's share of the schedule, which
`BfggShape` (defined only when the node sets BFGG_SHAPE=1, i.e. when the
locustfile brings no LoadTestShape of its own) hands to Locust every tick;
and {"stop": true}: the local runner or master ends the load shape at once,
and Locust shuts down as after a shape ends (its users get Locust's
--stop-timeout): final statistics, the quit event (the last flush), exit. (SIGTERM is
no substitute: a headless shape test installs its handler only after the
shape ends, so until then SIGTERM kills Locust outright.)

If the node goes away (the connection closes) the process shuts itself down
like on SIGTERM, and is killed outright 10 s later.
"""

import json
import os
import re
import signal
import socket
import struct
import sys
import time

import gevent
import locust
from locust import events

HELLO, NAME, ERROR, BATCH = 1, 2, 3, 4
FLUSH_S = 0.1
FLUSH_BYTES = 64 * 1024
NO_USERS = 0xFFFFFFFF
MAX_NAMES = int(os.environ.get("BFGG_MAX_NAMES", "2000"))
MAX_ERRORS = int(os.environ.get("BFGG_MAX_ERRORS", "1000"))
MAX_MESSAGE = 300
OTHER_NAMES = "(other names: more than %d distinct)" % MAX_NAMES
OTHER_ERRORS = "(other failures: more than %d distinct messages)" % MAX_ERRORS

_HEADER = struct.Struct("<BI")
_RECORD = struct.Struct("<HHQII")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

_link = None


def _frame(kind, payload):
    return _HEADER.pack(kind, len(payload)) + payload


class Link:
    """One Locust process's connection to the node."""

    def __init__(self, environment, role):
        self.environment = environment
        self.role = role
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(os.environ["BFGG_SOCKET"])
        self.out = bytearray()
        self.records = bytearray()
        self.names = {}
        self.errors = {}
        self.t0_ms = None
        self.users = 0
        self.spawn_rate = 1.0
        self.stopping = False
        hello = {
            "token": os.environ.get("BFGG_TOKEN", ""),
            "pid": os.getpid(),
            "role": role,
            "locust": locust.__version__,
            "python": "%d.%d.%d" % sys.version_info[:3],
        }
        self.sock.sendall(_frame(HELLO, json.dumps(hello).encode()))
        gevent.spawn(self._flusher)
        gevent.spawn(self._reader)

    def _intern(self, table, text, cap, other, kind):
        """The id of `text` in `table`, sending it to the node the first time;
        past `cap` distinct texts, the id of `other` instead."""
        tid = table.get(text)
        if tid is None:
            if len(table) >= cap:
                text = other
                tid = table.get(text)
            if tid is None:
                tid = len(table) + 1
                table[text] = tid
                self.out += _frame(kind, struct.pack("<H", tid) + text.encode("utf-8", "replace"))
        return tid

    def record(self, name, response_time, response_length, exception, start_time):
        nid = self.names.get(name) or self._intern(self.names, name, MAX_NAMES, OTHER_NAMES, NAME)
        eid = 0
        if exception is not None:
            message = _ADDRESS.sub("", str(exception) or type(exception).__name__)[:MAX_MESSAGE]
            eid = self._intern(self.errors, message, MAX_ERRORS, OTHER_ERRORS, ERROR)
        rt_ms = response_time or 0.0
        end_us = int(start_time * 1_000_000 + rt_ms * 1000) if start_time else int(time.time() * 1_000_000)
        self.records += _RECORD.pack(
            nid, eid, end_us, min(int(rt_ms * 1000), 0xFFFFFFFF), min(int(response_length or 0), 0xFFFFFFFF)
        )
        if len(self.records) >= FLUSH_BYTES:
            self.flush()

    def flush(self):
        runner = self.environment.runner
        users = NO_USERS if self.role == "master" or runner is None else runner.user_count
        batch = struct.pack("<I", users) + self.records
        self.records = bytearray()
        data = bytes(self.out) + _frame(BATCH, batch)
        self.out = bytearray()
        try:
            self.sock.sendall(data)
        except OSError:
            _node_gone()

    def _flusher(self):
        while True:
            gevent.sleep(FLUSH_S)
            self.flush()

    def _reader(self):
        pending = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                _node_gone()
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                msg = json.loads(line)
                if "t0_ms" in msg:
                    self.t0_ms = msg["t0_ms"]
                if "users" in msg:
                    self.users = int(msg["users"])
                    self.spawn_rate = float(msg["spawn_rate"])
                if msg.get("stop") and not self.stopping:
                    self.stopping = True
                    if self.role != "worker":
                        gevent.spawn(self._quit)

    def _quit(self):
        # Ending the shape is Locust's own way out of a headless shape test:
        # its main loop then quits the runner once (quitting it here as well
        # made Locust stop each user twice, with a traceback per user).
        runner = self.environment.runner
        if runner is None:
            return
        shape = getattr(runner, "shape_greenlet", None)
        if shape is not None:
            shape.kill(block=False)
        else:
            runner.quit()


def _node_gone():
    """The node closed the connection: shut down as on SIGTERM, then for good."""
    if getattr(_node_gone, "done", False):
        return
    _node_gone.done = True
    gevent.spawn_later(10, os._exit, 3)
    os.kill(os.getpid(), signal.SIGTERM)


def _role(runner):
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs):
    global _link
    _link = Link(environment, _role(runner))
    if _link.role == "worker":
        return
    # The local runner or master starts users only at the run's time zero:
    # Locust's start-up happens before it, the load from it on.
    while _link.t0_ms is None:
        gevent.sleep(0.005)
    while True:
        left = _link.t0_ms / 1000.0 - time.time()
        if left <= 0:
            break
        gevent.sleep(min(left, 0.05))


@events.request.add_listener
def _on_request(request_type, name, response_time, response_length, exception=None, start_time=None, **_kwargs):
    if _link is not None:
        _link.record(name, response_time, response_length, exception, start_time)


@events.quit.add_listener
def _on_quit(**_kwargs):
    if _link is not None:
        _link.flush()


if os.environ.get("BFGG_SHAPE") == "1":
    from locust import LoadTestShape

    class BfggShape(LoadTestShape):
        """This agent's share of the scenario's [load], as the node computes it."""

        def tick(self):
            if _link is None:
                return (0, 1.0)
            if _link.stopping:
                return None
            return (_link.users, _link.spawn_rate)
