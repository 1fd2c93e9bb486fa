"""Attempts to reach what ferry holds. Each attempt answers "OK: ..." when
it got through, else the error it met. Run as a script (the test command),
it prints the answers as one JSON line and fails when any got through."""

import json
import os
import signal
import socket
import sys
import threading


def _try(answers, name, fn):
    try:
        answers[name] = "OK: " + str(fn())[:200]
    except Exception as exc:  # every failure is the answer
        answers[name] = "%s: %s" % (type(exc).__name__, exc)


def _read(path):
    with open(path, "rb") as f:
        return f.read(200)


def _write(path):
    with open(path, "w") as f:
        f.write("owned")
    return path


def _see_pid(pid):
    if str(pid) not in os.listdir("/proc"):
        raise LookupError("pid %s is not in this /proc" % pid)
    return "visible"


def _signal(pid):
    if pid <= 0:  # 0 and -1 would mean its own group, or everyone it may signal
        raise LookupError("no pid of ferry given")
    os.kill(pid, 0)
    return "signalled"


def _env_secret(secret):
    hits = [k for k, v in os.environ.items() if secret and secret in v]
    if hits:
        return hits
    raise LookupError("no variable holds it; PATH=%s" % os.environ.get("PATH"))


def _listen_everywhere(keep):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen(8)
    port = s.getsockname()[1]
    keep["port"] = port
    # why: keep it open while the test dials it from the host.
    timer = threading.Timer(60, s.close)
    timer.daemon = True  # a test command must still end at once
    timer.start()
    return port


def attempts(t):
    data = t.get("dataDir", "/nonexistent")
    pid = int(t.get("ferryPid", 0) or 0)
    answers = {}
    keep = {}
    _try(answers, "read /proc/<ferry>/environ", lambda: _read("/proc/%d/environ" % pid))
    _try(answers, "read /proc/1/environ", lambda: _read("/proc/1/environ"))
    _try(answers, "see ferry in /proc", lambda: _see_pid(pid))
    _try(answers, "signal ferry", lambda: _signal(pid))
    _try(answers, "signal pid 1", lambda: os.kill(1, signal.SIGTERM) or "signalled")
    _try(answers, "list the data folder", lambda: os.listdir(data))
    _try(answers, "read ferry.db", lambda: _read(os.path.join(data, "ferry.db")))
    _try(answers, "list the image cache", lambda: os.listdir(os.path.join(data, "images")))
    _try(answers, "read another function's rootfs", lambda: _read(t.get("otherRootfsFile", "/nonexistent")))
    _try(answers, "list the mirrors", lambda: os.listdir(os.path.join(data, "mirrors")))
    _try(answers, "list the build cache", lambda: os.listdir(os.path.join(data, "build-cache")))
    _try(answers, "write the data folder", lambda: _write(os.path.join(data, "owned")))
    _try(answers, "write /", lambda: _write("/owned"))
    _try(answers, "write /usr", lambda: _write("/usr/owned"))
    if t.get("function"):  # a test may write its own copy of the repository
        _try(answers, "write its own code", lambda: _write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "owned")))
    _try(answers, "hold a secret of ferry's", lambda: _env_secret(t.get("secret", "")))
    _try(answers, "reach the internet", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2).close() or "connected")
    _try(answers, "reach ferry's API", lambda: socket.create_connection(("127.0.0.1", int(t.get("apiPort", 1))), timeout=2).close() or "connected")
    _try(answers, "listen on every address", lambda: _listen_everywhere(keep))
    # The listen attempt "succeeds" in the function's own network: whether
    # the host can reach it is for the test to say.
    if "port" in keep:
        answers["listen on every address"] = "bound in its own network: port %d" % keep["port"]
        answers["listenPort"] = keep["port"]
    answers["uid"] = os.getuid()
    return answers


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    targets = {}
    # why: the first commit has none; the test adds them once ferry runs.
    if os.path.exists(os.path.join(here, "targets.json")):
        with open(os.path.join(here, "targets.json")) as f:
            targets = json.load(f)
    got = attempts(targets)
    print("ATTEMPTS " + json.dumps(got, sort_keys=True))
    through = [k for k, v in got.items() if isinstance(v, str) and v.startswith("OK")]
    sys.exit(1 if through else 0)
