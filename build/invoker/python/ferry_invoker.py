"""ferry's Python invoker: serves one Python handler by ferry's function contract.

ferry adds this file to every Python function image as
/ferry/invoker/ferry_invoker.py and starts it with `python3` and this path.
The contract is written in build/invoker/doc.go of the ferry repository. In
short: GET or HEAD of /healthz and /metrics answer themselves, and every
other request calls the handler named by FERRY_HANDLER ("module.function")
with the CloudEvent the request carries.

The handler is `handle(event, context)` or `async def handle(event, context)`.
`event` is a dict with "data", "id", "type", "source", "time" (the ce-time
string or None) and "extensions" (the other ce-* headers, without the
prefix), plus "subject", "dataschema" and "datacontenttype" when the request
has them. `context` has function_name, timeout (seconds, a float) and memory.

Everything is found relative to this file, <root>/invoker/ferry_invoker.py:
the function's code in <root>/function (or $FERRY_FUNCTION_DIR) and its
dependencies in <root>/deps. Only the standard library is used, so the file
runs on any Python 3.9 or later.
"""

import array
import asyncio
import datetime
import http.server
import importlib
import inspect
import io
import ipaddress
import itertools
import json
import os
import re
import signal
import site
import socket
import socketserver
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTION_DIR = os.path.abspath(
    os.environ.get("FERRY_FUNCTION_DIR") or os.path.join(ROOT, "function")
)
DEPS_DIR = os.path.join(ROOT, "deps")

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = "30s"  # ferry's default function timeout
DEFAULT_MEMORY = "128Mi"  # ferry's default function memory
# The longest Go duration, in seconds: FUNCTION_TIMEOUT is one.
MAX_DURATION = (2**63 - 1) / 1e9

# The gateway limits bodies too; this limit protects the process.
MAX_BODY = 6 << 20
# A declared body this much too large is still read and dropped, so that the
# client sees the 413 instead of a reset connection; a larger one is not.
DRAIN_LIMIT = 16 << 20
# After SIGTERM, calls in flight get FUNCTION_TIMEOUT and this long to finish.
SHUTDOWN_EXTRA = 1.0
# A kept-alive connection is closed after this long without a request, and
# one whose request line and headers take longer than HEADER_TIMEOUT; ferry's
# Go main does the same. A body must keep coming: a read that waits
# IDLE_TIMEOUT for it ends the connection too.
IDLE_TIMEOUT = 120.0
HEADER_TIMEOUT = 10.0
# JSON data may nest this many arrays and objects, in every runtime.
MAX_JSON_DEPTH = 512

PLAIN_EVENT_TYPE = "dev.ferry.http.request"


def _now():
    """The current time in the form ce-time takes (RFC 3339, UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
JSON_TYPE = "application/json"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ce-* headers that are event attributes; every other ce-* is an extension.
ATTRIBUTE_HEADERS = {
    "ce-specversion": None,
    "ce-id": "id",
    "ce-source": "source",
    "ce-type": "type",
    "ce-time": "time",
    "ce-subject": "subject",
    "ce-dataschema": "dataschema",
}
REQUIRED_HEADERS = ("ce-id", "ce-source", "ce-type")
# RFC 3339 as ferry's Go main takes it: upper-case T and Z, seconds up to 59,
# a fraction after a full stop, offsets up to 23:59; is_rfc3339 checks the day.
RFC3339 = re.compile(
    r"([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
    re.ASCII,
)
# Charsets text data is decoded by, by name; any other is UTF-8. The Node.js
# invoker and ferry's Go main know the same names.
CHARSETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "iso-8859-1": "latin-1",
    "iso_8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
    "l1": "latin-1",
}
PERCENT_ENCODED = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")


def log(message):
    sys.stderr.write("ferry invoker: " + message + "\n")
    sys.stderr.flush()


# --- loading the handler ---------------------------------------------------


class LoadError(Exception):
    """A handler that cannot be loaded: str() is the reason, file where it was looked for."""

    def __init__(self, reason, file, cause=None):
        super().__init__(reason)
        self.file = file
        self.cause = cause


def setup_path():
    """Put the function's code, then its dependencies, ahead of everything else on sys.path."""
    before = [p for p in sys.path if p not in (FUNCTION_DIR, DEPS_DIR)]
    sys.path[:] = before
    # addsitedir also reads the .pth files `pip install --target` leaves for
    # namespace packages; it appends, so move what it added to the front.
    site.addsitedir(DEPS_DIR)
    added = [p for p in sys.path if p not in before and p != DEPS_DIR]
    sys.path[:] = [FUNCTION_DIR, DEPS_DIR] + added + before


def is_inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def load_handler(spec):
    """The callable FERRY_HANDLER names ("pkg.module.function") and the file it is in."""
    example = "such as main.handle for def handle in main.py"
    if not spec:
        raise LoadError("FERRY_HANDLER is not set; it names the handler as module.function, " + example, FUNCTION_DIR)
    module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise LoadError('FERRY_HANDLER "%s" is not module.function, %s' % (spec, example), FUNCTION_DIR)
    expected = os.path.join(FUNCTION_DIR, *module_name.split(".")) + ".py"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise LoadError("there is no module %s in %s" % (module_name, FUNCTION_DIR), expected) from None
        reason = "importing %s failed: %s (is it one of the function's dependencies?)" % (module_name, exc)
        raise LoadError(reason, expected, exc) from None
    except BaseException as exc:  # a SyntaxError, or anything the module raises, even SystemExit
        reason = "importing %s failed: %s: %s" % (module_name, type(exc).__name__, exc)
        raise LoadError(reason, expected, exc) from None
    file = getattr(module, "__file__", None)
    if not file or not (is_inside(file, FUNCTION_DIR) or is_inside(file, DEPS_DIR)):
        # why: the invoker itself imported json, http, signal...; a function file
        # of the same name would silently lose to the module already loaded.
        where = file or "built into Python"
        raise LoadError(
            "module %s is %s, not a file of the function: Python already has a module of that name; rename the file"
            % (module_name, where),
            expected,
        )
    missing = object()
    handler = getattr(module, attr, missing)
    if handler is missing:
        raise LoadError("module %s has no attribute %s" % (module_name, attr), file)
    if not callable(handler):
        raise LoadError("%s is a %s, not a function" % (spec, type(handler).__name__), file)
    return handler, file


# --- configuration -----------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text):
    """Seconds in a Go duration ("30s", "1m30s", "500ms"); ValueError when text is not one."""
    rest, sign = text, 1.0
    if rest[:1] in ("+", "-"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError("not a duration: %r" % text)
    total, pos = 0.0, 0
    while pos < len(rest):
        part = _DURATION_PART.match(rest, pos)
        if not part:
            raise ValueError("not a duration: %r" % text)
        total += float(part.group(1)) * _DURATION_UNITS[part.group(2)]
        pos = part.end()
    return sign * total


class Context:
    """What a handler learns about its function: function_name, timeout (seconds) and memory."""

    __slots__ = ("function_name", "timeout", "memory")

    def __init__(self, function_name, timeout, memory):
        self.function_name = function_name
        self.timeout = timeout
        self.memory = memory

    def __repr__(self):
        return "Context(function_name=%r, timeout=%r, memory=%r)" % (self.function_name, self.timeout, self.memory)


class ConfigError(Exception):
    """The environment sets something the invoker cannot run with."""


def timeout_from_env():
    """FUNCTION_TIMEOUT as set (or the default) and in seconds; ConfigError when it is not a positive Go duration."""
    text = os.environ.get("FUNCTION_TIMEOUT") or DEFAULT_TIMEOUT
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= MAX_DURATION:
        raise ConfigError('FUNCTION_TIMEOUT "%s" is not a positive Go duration such as 30s' % text)
    return text, seconds


def context_from_env(timeout):
    return Context(
        os.environ.get("FUNCTION_NAME", ""),
        timeout,
        os.environ.get("FUNCTION_MEMORY") or DEFAULT_MEMORY,
    )


# --- requests into events ----------------------------------------------------


class HTTPError(Exception):
    """A request the invoker answers itself, with status and {"error": str(self)}."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def media_type(content_type):
    return content_type.split(";", 1)[0].strip().lower()


def charset_of(content_type):
    """The charset parameter of a Content-Type, lower case and unquoted; "" when there is none."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            value = value.strip()
            if value.startswith('"'):
                value = value[1:]
            if value.endswith('"'):
                value = value[:-1]
            return value.lower()
    return ""


def decode_text(body, charset):
    """Text data as a str: by its charset when CHARSETS names it, else UTF-8; bad bytes become U+FFFD."""
    return body.decode(CHARSETS.get(charset, "utf-8"), errors="replace")


def _reject_constant(name):
    # why: NaN and Infinity are not JSON; the other invokers refuse them too.
    raise ValueError("%s is not valid JSON" % name)


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def nests_too_deeply(body):
    """Whether body opens more than MAX_JSON_DEPTH arrays and objects at once, brackets in strings aside."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    # why: a loop over the bytes in Python is slow on a 6 MiB body; these
    # regular expressions and accumulate run in C.
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    steps = array.array("b", brackets.translate(_BRACKET_STEP))
    return max(itertools.accumulate(steps), default=0) > MAX_JSON_DEPTH


def parse_json(body):
    """The JSON value of body; ValueError when body is not UTF-8 JSON nesting at most MAX_JSON_DEPTH levels."""
    text = body.decode("utf-8")  # a UnicodeDecodeError is a ValueError; a byte order mark is left to fail
    if nests_too_deeply(body):
        raise ValueError("it nests deeper than %d arrays and objects" % MAX_JSON_DEPTH)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("it nests deeper than %d arrays and objects" % MAX_JSON_DEPTH) from None


def decode_data(body, content_type):
    """The event's data: JSON decoded, text/* a str, anything else bytes; an empty body None."""
    if not body:
        return None
    kind = media_type(content_type) if content_type else ""
    if kind == JSON_TYPE or kind.endswith("+json"):
        try:
            return parse_json(body)
        except ValueError as exc:  # includes UnicodeDecodeError
            raise HTTPError(400, "the body is not valid JSON, though Content-Type is %s: %s" % (kind, exc)) from None
    if kind.startswith("text/"):
        return decode_text(body, charset_of(content_type))
    if not kind:
        try:
            return parse_json(body)
        except ValueError:
            return body
    return body


def days_in_month(year, month):
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def is_rfc3339(text):
    """Whether text is a timestamp ferry's Go main takes for ce-time."""
    match = RFC3339.fullmatch(text)
    if not match:
        return False
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    return 1 <= day <= days_in_month(year, month)


def header_value(value):
    """A ce-* header value without the percent-encoding of the CloudEvents HTTP binding.

    A value that does not decode to UTF-8 is kept as sent.
    """
    if "%" not in value or not PERCENT_ENCODED.fullmatch(value):
        return value
    try:
        return urllib.parse.unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value


def build_event(headers, body):
    """The event a request carries: binary-mode CloudEvents 1.0, or a plain request made into one."""
    ce = {}
    for name, value in headers.items():
        name = name.lower()
        # The first of a repeated header counts, as in the other runtimes.
        if name.startswith("ce-") and len(name) > 3 and name not in ce:
            ce[name] = header_value(value)
    content_type = headers.get("Content-Type")
    if "ce-specversion" in ce:
        version = ce["ce-specversion"]
        if version != "1.0":
            raise HTTPError(
                400, 'ce-specversion "%s" is not supported: ferry takes CloudEvents 1.0 (ce-specversion: 1.0)' % version
            )
        for name in REQUIRED_HEADERS:
            if not ce.get(name):
                raise HTTPError(400, "header %s is missing: a CloudEvents 1.0 request needs ce-id, ce-source and ce-type" % name)
        if "ce-time" in ce and not is_rfc3339(ce["ce-time"]):
            raise HTTPError(400, 'header ce-time "%s" is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z' % ce["ce-time"])
        event = {
            "data": None,
            "id": ce["ce-id"],
            "type": ce["ce-type"],
            "source": ce["ce-source"],
            "time": ce.get("ce-time"),
            "extensions": {name[3:]: value for name, value in ce.items() if name not in ATTRIBUTE_HEADERS},
        }
        for name in ("ce-subject", "ce-dataschema"):
            if name in ce:
                event[ATTRIBUTE_HEADERS[name]] = ce[name]
    else:
        event = {
            "data": None,
            "id": str(uuid.uuid4()),
            "type": PLAIN_EVENT_TYPE,
            "source": "/",
            "time": _now(),
            "extensions": {},
        }
    if content_type:
        event["datacontenttype"] = content_type
    event["data"] = decode_data(body, content_type)
    return event


def to_json(value):
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, it is still valid JSON
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_body(message):
    return to_json({"error": message})


# --- metrics -------------------------------------------------------------------


class Metrics:
    """The call counters and duration histogram, safe to update from any thread."""

    def __init__(self, function_name):
        escaped = function_name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        self._label = 'function="%s"' % escaped
        self._lock = threading.Lock()
        self._calls = 0
        self._failures = 0
        self._sum = 0.0
        self._buckets = [0] * len(BUCKETS)  # cumulative: calls that took at most BUCKETS[i]

    def observe(self, seconds, failed):
        with self._lock:
            self._calls += 1
            if failed:
                self._failures += 1
            self._sum += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1

    def render(self):
        with self._lock:
            calls, failures, total, buckets = self._calls, self._failures, self._sum, list(self._buckets)
        label = self._label
        lines = [
            "# HELP function_calls_total Invocations of the function.",
            "# TYPE function_calls_total counter",
            "function_calls_total{%s} %d" % (label, calls),
            "# HELP function_failures_total Invocations that ended in an error.",
            "# TYPE function_failures_total counter",
            "function_failures_total{%s} %d" % (label, failures),
            "# HELP function_duration_seconds How long the function took to answer.",
            "# TYPE function_duration_seconds histogram",
        ]
        for bound, count in zip(BUCKETS, buckets):
            lines.append('function_duration_seconds_bucket{%s,le="%g"} %d' % (label, bound, count))
        lines.append('function_duration_seconds_bucket{%s,le="+Inf"} %d' % (label, calls))
        lines.append("function_duration_seconds_sum{%s} %r" % (label, total))
        lines.append("function_duration_seconds_count{%s} %d" % (label, calls))
        return ("\n".join(lines) + "\n").encode("utf-8")


# --- calling the handler ---------------------------------------------------------


class AsyncRunner:
    """One event loop, on its own thread, runs every coroutine a handler returns.

    One loop for all calls, rather than asyncio.run per call, lets an async
    handler keep clients and caches bound to the loop between calls.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._loop = None

    def submit(self, awaitable):
        """A LoopCall running awaitable on the loop."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="ferry-asyncio", daemon=True).start()
        return LoopCall(self._loop, _awaited(awaitable))


class LoopCall:
    """A coroutine running on a loop, seen from another thread: ended is set once its task is done (returned, raised
    or cancelled, even before it began), unlike a cancelled concurrent.futures.Future, which does not wait."""

    def __init__(self, loop, coroutine):
        self.ended = threading.Event()
        self._loop = loop
        self._task = None

        def start():
            self._task = loop.create_task(coroutine)
            self._task.add_done_callback(lambda _: self.ended.set())

        loop.call_soon_threadsafe(start)

    def wait(self, timeout=None):
        """Whether the task is done within timeout seconds."""
        return self.ended.wait(timeout)

    def result(self):
        """What the task returned; raises what it raised. Only once ended."""
        return self._task.result()

    def cancel(self):
        # why: call_soon_threadsafe keeps its order, so start has run first.
        self._loop.call_soon_threadsafe(lambda: self._task.cancel())


async def _awaited(awaitable):
    return await awaitable


class Invoker:
    """The loaded handler and what calls to it share."""

    def __init__(self, spec, handler, context, timeout_text):
        self.spec = spec
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.context = context
        self.timeout_text = timeout_text
        self.metrics = Metrics(context.function_name)
        self.runner = AsyncRunner()
        self.draining = False
        self._inflight = 0
        self._idle = threading.Condition()

    def call(self, event):
        """The status, body and content type answering event.

        The handler gets FUNCTION_TIMEOUT to answer. Past it, an async
        handler's task is cancelled; Python cannot stop a thread, so a sync
        handler (on a thread of its own) runs on. Either way the call is
        answered 504 only once the handler has ended, never before: the
        answer tells ferry's gateway, which answered its caller 504 at its
        own deadline (never later than this one, since it started first),
        that the call's slot is free again.
        """
        outcome = {}  # "result", or "error" with the exception
        if self.is_async:
            # why: calling an async def only makes the coroutine; the loop runs it.
            try:
                future = self.runner.submit(self.handler(event, self.context))
            except BaseException as exc:
                outcome["error"] = exc
                self._log_raised(event, exc)
            else:
                if future.wait(min(self.context.timeout, threading.TIMEOUT_MAX)):
                    try:
                        outcome["result"] = future.result()
                    except BaseException as exc:  # the coroutine's exception
                        outcome["error"] = exc
                        self._log_raised(event, exc)
                else:
                    future.cancel()
                    return self._timed_out(event, "its task is cancelled", future.ended)
        else:
            done = threading.Event()
            running = threading.Thread(
                target=self._run_sync, args=(event, outcome, done), name="ferry-handler-%s" % event["id"], daemon=True
            )
            running.start()
            if not done.wait(min(self.context.timeout, threading.TIMEOUT_MAX)):
                return self._timed_out(event, "it is still running", done)
        if "error" in outcome:
            exc = outcome["error"]
            return 500, error_body(str(exc) or type(exc).__name__), JSON_TYPE
        result = outcome["result"]
        if isinstance(result, (bytes, bytearray, memoryview)):
            return 200, bytes(result), "application/octet-stream"
        try:
            return 200, to_json(result), JSON_TYPE
        except (TypeError, ValueError, RecursionError) as exc:
            message = "the result of %s is not JSON serialisable: %s" % (self.spec, exc)
            log(message)
            return 500, error_body(message), JSON_TYPE

    def _run_sync(self, event, outcome, done):
        """Calls the handler, on a thread of its own, into outcome; sets done when it returns."""
        try:
            result = self.handler(event, self.context)
            if inspect.isawaitable(result):  # a sync function that returns a coroutine
                running = self.runner.submit(result)
                running.wait()
                result = running.result()
            outcome["result"] = result
        except BaseException as exc:  # why: even SystemExit from a handler must answer, not kill the thread
            outcome["error"] = exc
            self._log_raised(event, exc)
        finally:
            done.set()

    def _log_raised(self, event, exc):
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        log("%s raised on event %s:\n%s" % (self.spec, event["id"], trace))

    def _timed_out(self, event, what, ended):
        """The 504 of a call past FUNCTION_TIMEOUT, once ended (a threading.Event) is set: when its handler has ended."""
        log("%s did not answer event %s within FUNCTION_TIMEOUT %s: %s; it is answered 504 when it ends"
            % (self.spec, event["id"], self.timeout_text, what))
        ended.wait()
        message = "timed out: the handler did not answer within FUNCTION_TIMEOUT %s" % self.timeout_text
        return 504, error_body(message), JSON_TYPE

    def enter(self):
        with self._idle:
            self._inflight += 1

    def leave(self):
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout):
        """Whether every call in flight finished within timeout seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def inflight(self):
        with self._idle:
            return self._inflight


# --- HTTP ----------------------------------------------------------------------


class DeadlineReader(socket.SocketIO):
    """A connection's reads, each bounded: by the time left to deadline when one is set, by IDLE_TIMEOUT otherwise."""

    deadline = None  # time.monotonic() by which the reads must be done

    def readinto(self, buffer):
        if self.deadline is None:
            self._sock.settimeout(IDLE_TIMEOUT)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")  # TimeoutError from Python 3.10 on
            self._sock.settimeout(left)
        return super().readinto(buffer)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ferry-invoker"
    sys_version = ""

    def setup(self):
        super().setup()
        # why: headers and body go out in two writes; with Nagle's algorithm
        # the second waits for the client's delayed ACK, 40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # why: a socket timeout bounds each read, not the headers as a whole;
        # DeadlineReader bounds them as Go's ReadHeaderTimeout does.
        self.reader = DeadlineReader(self.connection, "rb")
        self.rfile.close()
        self.rfile = io.BufferedReader(self.reader)
        self.reader.deadline = time.monotonic() + HEADER_TIMEOUT  # the first request's
        self.served = False

    def handle_one_request(self):
        if self.served:
            # Wait for the next request on a kept-alive connection, at most IDLE_TIMEOUT.
            self.reader.deadline = time.monotonic() + IDLE_TIMEOUT
            try:
                waiting = self.rfile.peek(1)
            except OSError:  # timed out, or the client went away
                waiting = b""
            if not waiting:
                self.close_connection = True
                return
            self.reader.deadline = time.monotonic() + HEADER_TIMEOUT
        self.served = True
        super().handle_one_request()

    def __getattr__(self, name):
        # why: BaseHTTPRequestHandler dispatches on do_<METHOD>; every method
        # is an invocation here, so every one is served by serve().
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        pass  # one line per request is noise; errors go through log_error

    def log_error(self, format, *args):
        if format.startswith("Request timed out"):
            return  # a client too slow with its headers, as Go's server does not log either
        log(format % args)

    def serve(self):
        self.reader.deadline = None  # the headers are in; the body reads get IDLE_TIMEOUT each
        invoker = self.server.invoker
        path = urllib.parse.urlsplit(self.path).path
        if self.command in ("GET", "HEAD") and path == "/healthz":
            return self.reply(200, b"ok", "text/plain; charset=utf-8")
        if self.command in ("GET", "HEAD") and path == "/metrics":
            return self.reply(200, invoker.metrics.render(), METRICS_TYPE)
        invoker.enter()
        start, status = time.monotonic(), 500
        try:
            try:
                status, body, content_type = invoker.call(build_event(self.headers, self.read_body()))
            except HTTPError as exc:
                status, body, content_type = exc.status, error_body(str(exc)), JSON_TYPE
            except Exception as exc:  # why: a request must get an answer, not a dropped connection
                log("serving %s %s failed:\n%s" % (self.command, self.path, traceback.format_exc().rstrip()))
                status, body, content_type = 500, error_body(str(exc) or type(exc).__name__), JSON_TYPE
                self.close_connection = True
            self.reply(status, body, content_type)
        finally:
            # Every invocation counts, a refused one too; only a 5xx is a failure.
            invoker.metrics.observe(time.monotonic() - start, status >= 500)
            invoker.leave()

    def read_body(self):
        try:
            return self.read_body_bytes()
        except OSError as exc:  # timed out, or the client went away
            self.close_connection = True
            raise HTTPError(400, "reading the body failed: %s" % exc) from None

    def read_body_bytes(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        if not re.fullmatch(r"[0-9]+", declared.strip()):
            self.close_connection = True
            raise HTTPError(400, 'Content-Length "%s" is not a number of bytes' % declared)
        length = int(declared)
        if length > MAX_BODY:
            self.close_connection = True
            if length <= DRAIN_LIMIT:
                self.discard(length)
            raise HTTPError(413, too_large(length))
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise HTTPError(400, "the body ended after %d of %d bytes" % (len(body), length))
        return body

    def read_chunked(self):
        chunks, size = [], 0
        while True:
            line = self.rfile.readline(1024)
            chunk_size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9a-fA-F]+", chunk_size):
                self.close_connection = True
                raise HTTPError(400, "the chunked body is malformed")
            length = int(chunk_size, 16)
            if length == 0:
                break
            size += length
            if size > MAX_BODY:
                self.close_connection = True
                raise HTTPError(413, too_large(size))
            chunk = self.rfile.read(length)
            self.rfile.readline(1024)  # the CRLF after the chunk
            if len(chunk) < length:
                self.close_connection = True
                raise HTTPError(400, "the chunked body ended early")
            chunks.append(chunk)
        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
            pass  # trailers carry nothing an event uses
        return b"".join(chunks)

    def discard(self, length):
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def reply(self, status, body, content_type):
        self.connection.settimeout(IDLE_TIMEOUT)  # a client that does not take its answer is dropped in time
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.server.invoker.draining:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def too_large(size):
    return "the body is %d bytes; a function takes at most %d (6 MiB)" % (size, MAX_BODY)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # why: server_close would otherwise join every connection thread, idle
    # keep-alive ones included; Invoker.wait_idle waits for calls in flight.
    block_on_close = False
    request_queue_size = 128  # ferry sends up to scale.concurrency (default 100) calls at once

    def __init__(self, address, invoker, family=socket.AF_INET, bind=True):
        self.address_family = family
        self.invoker = invoker
        super().__init__(address, RequestHandler, bind_and_activate=bind)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # why: HTTPServer.server_bind looks up the host's FQDN, which can hang
        # for seconds where DNS is slow; nothing here uses the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "ferry-invoker", self.server_address[1]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away; nothing to answer
        log("serving %s failed:\n%s" % (client_address[0], traceback.format_exc().rstrip()))


def listen(port, invoker):
    """The server: on the socket ferry handed over as the descriptor named by
    FERRY_LISTEN_FD (in ferry's sandbox the function has a network of its own
    and cannot bind the host's loopback), else on 127.0.0.1:port. Never on
    every address of a shared network: nothing but ferry's gateway and
    triggers may reach it. FERRY_LISTEN_ADDR replaces 127.0.0.1 where the
    network is the function's own (a Kubernetes pod, reached at its IP)."""
    fd_text = os.environ.get("FERRY_LISTEN_FD", "")
    if fd_text:
        if not re.fullmatch(r"[0-9]+", fd_text) or int(fd_text) < 3:
            raise OSError('FERRY_LISTEN_FD "%s" is not a file descriptor above 2' % fd_text)
        sock = socket.socket(fileno=int(fd_text))
        server = Server(sock.getsockname()[:2], invoker, sock.family, bind=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()[:2]
        server.server_name, server.server_port = "ferry-invoker", server.server_address[1]
        return server
    host = os.environ.get("FERRY_LISTEN_ADDR", "") or "127.0.0.1"
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise OSError('FERRY_LISTEN_ADDR "%s" is not an IP address such as 0.0.0.0' % host)
    return Server((host, port), invoker, family)


def main():
    spec = os.environ.get("FERRY_HANDLER", "")
    try:
        timeout_text, timeout = timeout_from_env()
    except ConfigError as exc:
        log(str(exc))
        return 1
    port_text = os.environ.get("PORT") or str(DEFAULT_PORT)
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        log('PORT "%s" is not a port number' % port_text)
        return 2
    setup_path()
    try:
        handler, _ = load_handler(spec)
    except LoadError as exc:
        log('cannot load handler "%s" from %s: %s' % (spec, exc.file, exc))
        if exc.cause is not None:
            traceback.print_exception(type(exc.cause), exc.cause, exc.cause.__traceback__, file=sys.stderr)
        return 2
    invoker = Invoker(spec, handler, context_from_env(timeout), timeout_text)
    try:
        server = listen(int(port_text), invoker)
    except OSError as exc:
        log("cannot listen on :%s: %s" % (port_text, exc))
        return 1

    def stop(signum, frame):
        if invoker.draining:
            return
        invoker.draining = True
        log("%s: finishing %d call(s) in flight" % (signal.Signals(signum).name, invoker.inflight()))
        # why: shutdown() waits for serve_forever to return, and serve_forever
        # runs on this thread, the one signal handlers run on.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("serving %s on :%d" % (spec, server.server_address[1]))
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    # why: a call within its time ends by FUNCTION_TIMEOUT; one past it waits
    # for a handler that may never end, so it gets no longer. The extra second
    # lets the last answers go out, as in Go's main.
    grace = timeout + SHUTDOWN_EXTRA
    if not invoker.wait_idle(min(grace, threading.TIMEOUT_MAX)):
        log("%d call(s) still running after FUNCTION_TIMEOUT %s and %gs; stopping anyway"
            % (invoker.inflight(), timeout_text, SHUTDOWN_EXTRA))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # why: a thread the handler started must not keep the process alive
    # past SIGTERM; os._exit does not wait for non-daemon threads.
    os._exit(status)
