"""ferry's Python invoker: serves one Python handler by ferry's function contract.

ferry adds this file to every Python function image as
/ferry/invoker/ferry_invoker.py and starts it with `python3` and this path.
The contract is written in build/invoker/doc.go of the ferry repository. In
short: GET /healthz and GET /metrics answer themselves, and every other
request calls the handler named by FERRY_HANDLER ("module.function") with
the CloudEvent the request carries.

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

import asyncio
import codecs
import datetime
import http.server
import importlib
import inspect
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
DEFAULT_TIMEOUT = 30.0  # seconds; ferry's default function timeout
DEFAULT_MEMORY = "128Mi"  # ferry's default function memory

# The gateway limits bodies too; this limit protects the process.
MAX_BODY = 6 << 20
# A declared body this much too large is still read and dropped, so that the
# client sees the 413 instead of a reset connection; a larger one is not.
DRAIN_LIMIT = 16 << 20
# After SIGTERM, calls in flight get this long to finish.
SHUTDOWN_GRACE = 5.0

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
RFC3339 = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
    r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
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


def context_from_env():
    timeout_text = os.environ.get("FUNCTION_TIMEOUT", "")
    timeout = DEFAULT_TIMEOUT
    if timeout_text:
        try:
            timeout = parse_duration(timeout_text)
        except ValueError:
            log('FUNCTION_TIMEOUT "%s" is not a Go duration such as 30s; using %gs' % (timeout_text, DEFAULT_TIMEOUT))
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
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"')
    return "utf-8"


def _reject_constant(name):
    # why: NaN and Infinity are not JSON; the other invokers refuse them too.
    raise ValueError("%s is not valid JSON" % name)


def parse_json(body):
    return json.loads(body, parse_constant=_reject_constant)


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
        charset = charset_of(content_type)
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = "utf-8"
        return body.decode(charset, errors="replace")
    if not kind:
        try:
            return parse_json(body)
        except ValueError:
            return body
    return body


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
        if name.startswith("ce-") and name not in ce:
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
        if "ce-time" in ce and not RFC3339.fullmatch(ce["ce-time"]):
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

    def run(self, awaitable):
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="ferry-asyncio", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self._loop).result()


async def _awaited(awaitable):
    return await awaitable


class Invoker:
    """The loaded handler and what calls to it share."""

    def __init__(self, spec, handler, context):
        self.spec = spec
        self.handler = handler
        self.context = context
        self.metrics = Metrics(context.function_name)
        self.runner = AsyncRunner()
        self.draining = False
        self._inflight = 0
        self._idle = threading.Condition()

    def call(self, event):
        """The status, body and content type answering event."""
        try:
            result = self.handler(event, self.context)
            if inspect.isawaitable(result):
                result = self.runner.run(result)
        except BaseException as exc:  # why: even SystemExit from a handler must answer, not kill the thread
            log("%s raised on event %s:\n%s" % (self.spec, event["id"], traceback.format_exc().rstrip()))
            return 500, error_body(str(exc) or type(exc).__name__), JSON_TYPE
        if isinstance(result, (bytes, bytearray, memoryview)):
            return 200, bytes(result), "application/octet-stream"
        try:
            return 200, to_json(result), JSON_TYPE
        except (TypeError, ValueError, RecursionError) as exc:
            message = "the result of %s is not JSON serialisable: %s" % (self.spec, exc)
            log(message)
            return 500, error_body(message), JSON_TYPE

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


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ferry-invoker"
    sys_version = ""

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
        log(format % args)

    def serve(self):
        invoker = self.server.invoker
        path = urllib.parse.urlsplit(self.path).path
        if self.command == "GET" and path == "/healthz":
            return self.reply(200, b"ok", "text/plain; charset=utf-8")
        if self.command == "GET" and path == "/metrics":
            return self.reply(200, invoker.metrics.render(), METRICS_TYPE)
        invoker.enter()
        start, status = time.monotonic(), 500
        try:
            try:
                status, body, content_type = invoker.call(build_event(self.headers, self.read_body()))
            except HTTPError as exc:
                status, body, content_type = exc.status, error_body(str(exc)), JSON_TYPE
            self.reply(status, body, content_type)
        finally:
            # Every invocation counts, a refused one too; only a 5xx is a failure.
            invoker.metrics.observe(time.monotonic() - start, status >= 500)
            invoker.leave()

    def read_body(self):
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

    def __init__(self, address, invoker, family=socket.AF_INET):
        self.address_family = family
        self.invoker = invoker
        super().__init__(address, RequestHandler)

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
    """A server on every address, IPv6 and IPv4 where the host has both."""
    if socket.has_dualstack_ipv6():
        try:
            return Server(("::", port), invoker, socket.AF_INET6)
        except OSError:
            pass  # IPv6 switched off at run time, as in some containers: IPv4 alone
    return Server(("", port), invoker)


def main():
    spec = os.environ.get("FERRY_HANDLER", "")
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
    invoker = Invoker(spec, handler, context_from_env())
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
    if not invoker.wait_idle(SHUTDOWN_GRACE):
        log("%d call(s) still running after %gs; stopping anyway" % (invoker.inflight(), SHUTDOWN_GRACE))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # why: a thread the handler started must not keep the process alive
    # past SIGTERM; os._exit does not wait for non-daemon threads.
    os._exit(status)
