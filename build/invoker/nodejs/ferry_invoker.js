// ferry's Node.js invoker: serves one Node.js handler by ferry's function
// contract.
//
// ferry adds this file to every Node.js function image as
// /ferry/invoker/ferry_invoker.js and starts it with `node` and this path.
// The contract is written in build/invoker/doc.go of the ferry repository.
// In short: GET or HEAD of /healthz and /metrics answer themselves, and
// every other request calls the handler named by FERRY_HANDLER
// ("path/to/file.export") with the CloudEvent the request carries.
//
// The handler is `(event, context) => result`, or a Promise of it. `event`
// has data, id, type, source, time (the ce-time string or null) and
// extensions (the other ce-* headers, without the prefix), plus subject,
// dataschema and datacontenttype when the request has them. `context` has
// functionName, timeout (milliseconds) and memory.
//
// Everything is found relative to this file, <root>/invoker/ferry_invoker.js:
// the function's code in <root>/function (or $FERRY_FUNCTION_DIR), and its
// dependencies in <root>/node_modules, where Node's own lookup from the
// function's files finds them. Only Node's built-in modules are used, so
// the file runs on any Node.js 18 or later.
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const path = require("node:path");
const { randomUUID } = require("node:crypto");
const { pathToFileURL } = require("node:url");
const util = require("node:util");

const ROOT = path.dirname(path.dirname(path.resolve(__filename)));
const FUNCTION_DIR = path.resolve(process.env.FERRY_FUNCTION_DIR || path.join(ROOT, "function"));

const DEFAULT_PORT = 8080;
const DEFAULT_TIMEOUT = "30s"; // ferry's default function timeout
const DEFAULT_MEMORY = "128Mi"; // ferry's default function memory
// The longest Go duration, in milliseconds: FUNCTION_TIMEOUT is one.
const MAX_DURATION_MS = 9223372036854.775;
// setTimeout fires at once for a longer delay; a timer this long is not armed.
const MAX_TIMER_MS = 2 ** 31 - 1;

// The gateway limits bodies too; this limit protects the process.
const MAX_BODY = 6 * 1024 * 1024;
// A body this much too large is still read and dropped, so that the client
// sees the 413 instead of a reset connection; a larger one is not.
const DRAIN_LIMIT = 16 * 1024 * 1024;
// After SIGTERM, calls in flight get FUNCTION_TIMEOUT and this long to finish.
const SHUTDOWN_EXTRA_MS = 1000;
// A kept-alive connection is closed after this long without a request, and
// one whose request line and headers take longer than HEADER_TIMEOUT_MS;
// ferry's Go main does the same.
const IDLE_TIMEOUT_MS = 120 * 1000;
const HEADER_TIMEOUT_MS = 10 * 1000;
// JSON data may nest this many arrays and objects, in every runtime.
const MAX_JSON_DEPTH = 512;

const PLAIN_EVENT_TYPE = "dev.ferry.http.request";
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const JSON_TYPE = "application/json";
const METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

// ce-* headers that are event attributes; every other ce-* is an extension.
const ATTRIBUTE_HEADERS = new Set([
  "ce-specversion",
  "ce-id",
  "ce-source",
  "ce-type",
  "ce-time",
  "ce-subject",
  "ce-dataschema",
]);
const REQUIRED_HEADERS = ["ce-id", "ce-source", "ce-type"];
// RFC 3339 as ferry's Go main takes it: upper-case T and Z, seconds up to 59,
// a fraction after a full stop, offsets up to 23:59; isRFC3339 checks the day.
const RFC3339 =
  /^([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$/;
// Charsets text data is decoded by, by name; any other is UTF-8. The Python
// invoker and ferry's Go main know the same names.
const CHARSETS = new Map([
  ["utf-8", "utf-8"],
  ["utf8", "utf-8"],
  ["us-ascii", "ascii"],
  ["ascii", "ascii"],
  ["iso-8859-1", "latin1"],
  ["iso_8859-1", "latin1"],
  ["iso8859-1", "latin1"],
  ["latin1", "latin1"],
  ["latin-1", "latin1"],
  ["l1", "latin1"],
]);

function log(message) {
  process.stderr.write(`ferry invoker: ${message}\n`);
}

// --- loading the handler ----------------------------------------------------

// LoadError is a handler that cannot be loaded: message is the reason, file
// where it was looked for.
class LoadError extends Error {
  constructor(reason, file, cause) {
    super(reason);
    this.file = file;
    this.cause = cause;
  }
}

function isFile(file) {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isInside(file, folder) {
  const rel = path.relative(folder, file);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

// findFile is the file a handler's path names: the path with .js, .cjs or
// .mjs, the path itself, or the module a folder resolves to; undefined when
// there is none.
function findFile(base) {
  for (const file of [`${base}.js`, `${base}.cjs`, `${base}.mjs`, base]) {
    if (isFile(file)) return file;
  }
  try {
    return require.resolve(base); // a folder with package.json or index.js
  } catch {
    return undefined;
  }
}

async function importFile(file) {
  return import(pathToFileURL(file).href);
}

// loadHandler returns the function FERRY_HANDLER names ("path/to/file.export")
// and the file it is in.
async function loadHandler(spec) {
  const example = "such as index.handler for exports.handler in index.js";
  if (!spec) {
    throw new LoadError(`FERRY_HANDLER is not set; it names the handler as file.export, ${example}`, FUNCTION_DIR);
  }
  const dot = spec.lastIndexOf(".");
  if (dot <= 0 || dot === spec.length - 1) {
    throw new LoadError(`FERRY_HANDLER "${spec}" is not file.export, ${example}`, FUNCTION_DIR);
  }
  const name = spec.slice(dot + 1);
  const base = path.resolve(FUNCTION_DIR, spec.slice(0, dot));
  if (!isInside(base, FUNCTION_DIR)) {
    throw new LoadError(`the file is outside the function's folder ${FUNCTION_DIR}`, base);
  }
  const file = findFile(base);
  if (file === undefined) {
    throw new LoadError(`there is no ${path.relative(FUNCTION_DIR, base)}.js, .cjs or .mjs in ${FUNCTION_DIR}`, `${base}.js`);
  }
  let mod;
  try {
    if (file.endsWith(".mjs")) {
      mod = await importFile(file);
    } else {
      try {
        mod = require(file);
      } catch (err) {
        // An ES module in a package of "type": "module" is imported instead.
        if (!err || err.code !== "ERR_REQUIRE_ESM") throw err;
        mod = await importFile(file);
      }
    }
  } catch (err) {
    // The first line only: the stack printed after the message repeats the rest.
    throw new LoadError(`loading it failed: ${messageOf(err).split("\n", 1)[0]}`, file, err);
  }
  let handler = mod == null ? undefined : mod[name];
  if (handler === undefined && mod != null && mod.default != null && typeof mod.default === "object") {
    handler = mod.default[name]; // export default { handler }
  }
  if (typeof handler !== "function") {
    const exported = mod == null ? [] : Object.keys(mod);
    const what = handler === undefined ? "not exported" : `a ${typeof handler}, not a function`;
    throw new LoadError(`${name} is ${what} (exports: ${exported.join(", ") || "none"})`, file);
  }
  return { handler, file };
}

// --- configuration -------------------------------------------------------------

const DURATION_PART = /([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;
const DURATION_UNITS = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3,
  "\u03bcs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60000,
  h: 3600000,
};

// parseDuration is the milliseconds in a Go duration ("30s", "1m30s",
// "500ms"); it throws when text is not one.
function parseDuration(text) {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("+") || rest.startsWith("-")) {
    sign = rest[0] === "-" ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw new Error(`not a duration: ${JSON.stringify(text)}`);
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < rest.length) {
    const part = DURATION_PART.exec(rest);
    if (part === null) throw new Error(`not a duration: ${JSON.stringify(text)}`);
    total += Number(part[1]) * DURATION_UNITS[part[2]];
  }
  return sign * total;
}

// timeoutFromEnv returns FUNCTION_TIMEOUT as set (or the default) and in
// milliseconds; undefined when it is not a positive Go duration.
function timeoutFromEnv() {
  const text = process.env.FUNCTION_TIMEOUT || DEFAULT_TIMEOUT;
  let ms = 0;
  try {
    ms = parseDuration(text);
  } catch {
    // not a duration
  }
  if (!(ms > 0 && ms <= MAX_DURATION_MS)) return undefined;
  return { text, ms };
}

function contextFromEnv(timeout) {
  // Frozen: one context serves every call, so no call may change it for the next.
  return Object.freeze({
    functionName: process.env.FUNCTION_NAME || "",
    timeout,
    memory: process.env.FUNCTION_MEMORY || DEFAULT_MEMORY,
  });
}

// --- requests into events --------------------------------------------------------

// HTTPError is a request the invoker answers itself, with status and
// {"error": message}; close when the connection cannot serve another request.
class HTTPError extends Error {
  constructor(status, message, close = false) {
    super(message);
    this.status = status;
    this.close = close;
  }
}

function mediaType(contentType) {
  return contentType.split(";", 1)[0].trim().toLowerCase();
}

// charsetOf is the charset parameter of a Content-Type, lower case and
// unquoted; "" when there is none.
function charsetOf(contentType) {
  for (const param of contentType.split(";").slice(1)) {
    const eq = param.indexOf("=");
    const key = eq >= 0 ? param.slice(0, eq) : param;
    if (key.trim().toLowerCase() === "charset") {
      return (eq >= 0 ? param.slice(eq + 1) : "").trim().replace(/^"/, "").replace(/"$/, "").toLowerCase();
    }
  }
  return "";
}

// nestsTooDeeply is whether text opens more than MAX_JSON_DEPTH arrays and
// objects at once, brackets in strings aside.
function nestsTooDeeply(text) {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes what follows
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

// parseJSON refuses bytes that are not UTF-8, as JSON must be, a byte order
// mark, and JSON nesting deeper than MAX_JSON_DEPTH.
function parseJSON(body) {
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
  if (nestsTooDeeply(text)) throw new Error(`it nests deeper than ${MAX_JSON_DEPTH} arrays and objects`);
  return JSON.parse(text);
}

// decodeText is text data as a string: by its charset when CHARSETS names
// it, else UTF-8; a byte the charset does not allow becomes U+FFFD.
function decodeText(body, charset) {
  const buffer = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  switch (CHARSETS.get(charset)) {
    case "latin1":
      return buffer.toString("latin1"); // ISO-8859-1; TextDecoder's latin1 is windows-1252
    case "ascii":
      return buffer.toString("latin1").replace(/[\u0080-\u00ff]/g, "\ufffd");
    default:
      // ignoreBOM keeps a byte order mark in the text, as Python and Go do.
      return new TextDecoder("utf-8", { ignoreBOM: true }).decode(buffer);
  }
}

function daysInMonth(year, month) {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

// isRFC3339 is whether text is a timestamp ferry's Go main takes for ce-time.
function isRFC3339(text) {
  const match = RFC3339.exec(text);
  if (match === null) return false;
  const day = Number(match[3]);
  return day >= 1 && day <= daysInMonth(Number(match[1]), Number(match[2]));
}

// decodeData is the event's data: JSON decoded, text/* a string, anything
// else a Buffer; an empty body null.
function decodeData(body, contentType) {
  if (body.length === 0) return null;
  const kind = contentType ? mediaType(contentType) : "";
  if (kind === JSON_TYPE || kind.endsWith("+json")) {
    try {
      return parseJSON(body);
    } catch (err) {
      throw new HTTPError(400, `the body is not valid JSON, though Content-Type is ${kind}: ${err.message}`);
    }
  }
  if (kind.startsWith("text/")) return decodeText(body, charsetOf(contentType));
  if (kind === "") {
    try {
      return parseJSON(body);
    } catch {
      return body;
    }
  }
  return body;
}

// headerValue is a ce-* header value without the percent-encoding of the
// CloudEvents HTTP binding; a value that does not decode to UTF-8 is kept
// as sent.
function headerValue(value) {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

// buildEvent is the event a request carries: binary-mode CloudEvents 1.0, or
// a plain request made into one.
function buildEvent(req, body) {
  const contentType = req.headers["content-type"];
  const ce = {};
  // why: req.headers joins a repeated header with ", "; the first counts, as
  // in the other runtimes.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    if (name.startsWith("ce-") && name.length > 3 && !Object.hasOwn(ce, name)) {
      ce[name] = headerValue(req.rawHeaders[i + 1]);
    }
  }
  let event;
  if (ce["ce-specversion"] !== undefined) {
    const version = ce["ce-specversion"];
    if (version !== "1.0") {
      throw new HTTPError(400, `ce-specversion "${version}" is not supported: ferry takes CloudEvents 1.0 (ce-specversion: 1.0)`);
    }
    for (const name of REQUIRED_HEADERS) {
      if (!ce[name]) {
        throw new HTTPError(400, `header ${name} is missing: a CloudEvents 1.0 request needs ce-id, ce-source and ce-type`);
      }
    }
    const time = ce["ce-time"];
    if (time !== undefined && !isRFC3339(time)) {
      throw new HTTPError(400, `header ce-time "${time}" is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z`);
    }
    const extensions = {};
    for (const [name, value] of Object.entries(ce)) {
      if (!ATTRIBUTE_HEADERS.has(name)) extensions[name.slice(3)] = value;
    }
    event = {
      data: null,
      id: ce["ce-id"],
      type: ce["ce-type"],
      source: ce["ce-source"],
      time: time === undefined ? null : time,
      extensions,
    };
    if (ce["ce-subject"] !== undefined) event.subject = ce["ce-subject"];
    if (ce["ce-dataschema"] !== undefined) event.dataschema = ce["ce-dataschema"];
  } else {
    event = { data: null, id: randomUUID(), type: PLAIN_EVENT_TYPE, source: "/", time: new Date().toISOString(), extensions: {} };
  }
  if (contentType) event.datacontenttype = contentType;
  event.data = decodeData(body, contentType);
  return event;
}

function tooLarge(size) {
  return `the body is ${size} bytes; a function takes at most ${MAX_BODY} (6 MiB)`;
}

// readBody resolves to the request's body, or rejects with an HTTPError.
function readBody(req) {
  const declared = Number(req.headers["content-length"]);
  if (declared > DRAIN_LIMIT) return Promise.reject(new HTTPError(413, tooLarge(declared), true));
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let settled = false;
    const settle = (fn, value) => {
      if (!settled) {
        settled = true;
        fn(value);
      }
    };
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY) {
        chunks.push(chunk);
      } else if (size > DRAIN_LIMIT) {
        settle(reject, new HTTPError(413, tooLarge(size), true));
      }
    });
    req.on("end", () => {
      if (size > MAX_BODY) settle(reject, new HTTPError(413, tooLarge(size), true));
      else settle(resolve, Buffer.concat(chunks, size));
    });
    req.on("error", (err) => settle(reject, new HTTPError(400, `reading the body failed: ${err.message}`, true)));
    // why: a client that goes away mid-body ends neither with "end" nor always
    // with "error", and the call must not stay counted as in flight.
    req.on("close", () => settle(reject, new HTTPError(400, "the client closed the connection", true)));
  });
}

// --- metrics ------------------------------------------------------------------

// Metrics holds the call counters and the duration histogram. Node runs
// JavaScript on one thread, so plain numbers are safe.
class Metrics {
  constructor(functionName) {
    const escaped = functionName.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    this.label = `function="${escaped}"`;
    this.calls = 0;
    this.failures = 0;
    this.sum = 0;
    this.buckets = BUCKETS.map(() => 0); // cumulative: calls that took at most BUCKETS[i]
  }

  observe(seconds, failed) {
    this.calls++;
    if (failed) this.failures++;
    this.sum += seconds;
    BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.buckets[i]++;
    });
  }

  render() {
    const label = this.label;
    const lines = [
      "# HELP function_calls_total Invocations of the function.",
      "# TYPE function_calls_total counter",
      `function_calls_total{${label}} ${this.calls}`,
      "# HELP function_failures_total Invocations that ended in an error.",
      "# TYPE function_failures_total counter",
      `function_failures_total{${label}} ${this.failures}`,
      "# HELP function_duration_seconds How long the function took to answer.",
      "# TYPE function_duration_seconds histogram",
    ];
    BUCKETS.forEach((bound, i) => {
      lines.push(`function_duration_seconds_bucket{${label},le="${bound}"} ${this.buckets[i]}`);
    });
    lines.push(`function_duration_seconds_bucket{${label},le="+Inf"} ${this.calls}`);
    lines.push(`function_duration_seconds_sum{${label}} ${this.sum}`);
    lines.push(`function_duration_seconds_count{${label}} ${this.calls}`);
    return lines.join("\n") + "\n";
  }
}

// --- calling the handler -----------------------------------------------------------

function messageOf(err) {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "string") return err;
  return util.inspect(err);
}

function stackOf(err) {
  return err instanceof Error && err.stack ? err.stack : util.inspect(err);
}

function errorBody(message) {
  return JSON.stringify({ error: message });
}

const TIMED_OUT = Symbol("timed out");

class Invoker {
  constructor(spec, handler, context, timeoutText) {
    this.spec = spec;
    this.handler = handler;
    this.context = context;
    this.timeoutText = timeoutText;
    this.metrics = new Metrics(context.functionName);
    this.inflight = 0;
    this.draining = false;
  }

  // call answers event with [status, body, content type]. The handler gets
  // FUNCTION_TIMEOUT to answer. Nothing can stop a promise, so past it the
  // handler runs on, and the call is answered 504 once it has settled, never
  // before: the answer tells ferry's gateway, which answered its caller 504
  // at its own deadline (never later than this one, since it started
  // first), that the call's slot is free again.
  async call(event) {
    const start = performance.now();
    let timer;
    const deadline = new Promise((resolve) => {
      if (this.context.timeout <= MAX_TIMER_MS) timer = setTimeout(resolve, this.context.timeout, TIMED_OUT);
    });
    let running;
    try {
      running = Promise.resolve(this.handler(event, this.context));
    } catch (err) {
      running = Promise.reject(err);
    }
    let result;
    try {
      result = await Promise.race([running, deadline]);
    } catch (err) {
      if (performance.now() - start < this.context.timeout) {
        log(`${this.spec} raised on event ${event.id}:\n${stackOf(err)}`);
        return [500, errorBody(messageOf(err)), JSON_TYPE];
      }
      result = TIMED_OUT; // a handler that blocked past its deadline, then threw
    } finally {
      clearTimeout(timer);
    }
    // why: a handler that blocks the event loop past the deadline keeps the
    // timer from firing, but timed out all the same.
    if (result === TIMED_OUT || performance.now() - start > this.context.timeout) {
      log(`${this.spec} did not answer event ${event.id} within FUNCTION_TIMEOUT ${this.timeoutText}: it is answered 504 when it ends`);
      try {
        await running;
      } catch (err) {
        log(`${this.spec} raised on event ${event.id} after its timeout:\n${stackOf(err)}`);
      }
      return [504, errorBody(`timed out: the handler did not answer within FUNCTION_TIMEOUT ${this.timeoutText}`), JSON_TYPE];
    }
    if (result instanceof Uint8Array) {
      return [200, Buffer.from(result.buffer, result.byteOffset, result.byteLength), "application/octet-stream"];
    }
    let text;
    let reason = "";
    try {
      text = result === undefined ? "null" : JSON.stringify(result);
    } catch (err) {
      reason = `: ${messageOf(err)}`; // a BigInt, or a cycle
    }
    if (text === undefined) {
      const message = `the result of ${this.spec} is not JSON serialisable${reason || ` (a ${typeof result})`}`;
      log(message);
      return [500, errorBody(message), JSON_TYPE];
    }
    return [200, text, JSON_TYPE];
  }
}

// --- HTTP ------------------------------------------------------------------------

function send(res, status, body, contentType, close) {
  const buffer = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const headers = { "Content-Type": contentType, "Content-Length": buffer.length };
  if (close) headers.Connection = "close";
  res.writeHead(status, headers);
  res.end(buffer); // Node leaves the body out of an answer to HEAD
}

async function serve(invoker, req, res) {
  let pathname = req.url.split("?", 1)[0];
  try {
    pathname = new URL(req.url, "http://invoker").pathname; // the absolute form too
  } catch {
    // keep the path as sent
  }
  const probe = req.method === "GET" || req.method === "HEAD";
  if (probe && pathname === "/healthz") {
    return send(res, 200, "ok", "text/plain; charset=utf-8", invoker.draining);
  }
  if (probe && pathname === "/metrics") {
    return send(res, 200, invoker.metrics.render(), METRICS_TYPE, invoker.draining);
  }
  const start = process.hrtime.bigint();
  let status = 500;
  try {
    let body, contentType;
    let close = invoker.draining;
    try {
      [status, body, contentType] = await invoker.call(buildEvent(req, await readBody(req)));
    } catch (err) {
      if (!(err instanceof HTTPError)) throw err;
      [status, body, contentType] = [err.status, errorBody(err.message), JSON_TYPE];
      close = close || err.close;
    }
    send(res, status, body, contentType, close || invoker.draining);
  } finally {
    // Every invocation counts, a refused one too; only a 5xx is a failure.
    invoker.metrics.observe(Number(process.hrtime.bigint() - start) / 1e9, status >= 500);
  }
}

function parsePort(text) {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) return undefined;
  return Number(text);
}

async function main() {
  const spec = process.env.FERRY_HANDLER || "";
  const timeout = timeoutFromEnv();
  if (timeout === undefined) {
    log(`FUNCTION_TIMEOUT "${process.env.FUNCTION_TIMEOUT}" is not a positive Go duration such as 30s`);
    process.exit(1);
  }
  const portText = process.env.PORT || String(DEFAULT_PORT);
  const port = parsePort(portText);
  if (port === undefined) {
    log(`PORT "${portText}" is not a port number`);
    process.exit(2);
  }
  let loaded;
  try {
    loaded = await loadHandler(spec);
  } catch (err) {
    if (!(err instanceof LoadError)) throw err;
    log(`cannot load handler "${spec}" from ${err.file}: ${err.message}`);
    if (err.cause !== undefined) process.stderr.write(`${stackOf(err.cause)}\n`);
    process.exit(2);
  }
  const invoker = new Invoker(spec, loaded.handler, contextFromEnv(timeout.ms), timeout.text);

  const server = http.createServer({ headersTimeout: HEADER_TIMEOUT_MS, connectionsCheckingInterval: 1000 }, (req, res) => {
    invoker.inflight++;
    // why: "close" comes once the answer is handed to the OS or the client is
    // gone, so exiting at zero in flight cannot cut an answer short.
    res.once("close", () => {
      invoker.inflight--;
      if (invoker.draining && invoker.inflight === 0) process.exit(0);
    });
    serve(invoker, req, res).catch((err) => {
      log(`serving ${req.method} ${req.url} failed:\n${stackOf(err)}`);
      if (!res.headersSent) send(res, 500, errorBody(messageOf(err)), JSON_TYPE, true);
      else res.destroy();
    });
  });
  // why: Node closes idle keep-alive connections after 5s by default, which
  // races a client (the gateway) that reuses them for longer; two minutes is
  // what ferry's Go main allows too.
  server.keepAliveTimeout = IDLE_TIMEOUT_MS;
  server.on("error", (err) => {
    log(`cannot listen on :${port}: ${err.message}`);
    process.exit(1);
  });

  const stop = (signal) => {
    if (invoker.draining) return;
    invoker.draining = true;
    log(`${signal}: finishing ${invoker.inflight} call(s) in flight`);
    server.close();
    server.closeIdleConnections();
    if (invoker.inflight === 0) process.exit(0);
    // why: a call within its time ends by FUNCTION_TIMEOUT; one past it waits
    // for a handler that may never end, so it gets no longer. The extra
    // second lets the last answers go out, as in Go's main.
    const grace = timeout.ms + SHUTDOWN_EXTRA_MS;
    if (grace <= MAX_TIMER_MS) {
      setTimeout(() => {
        log(`${invoker.inflight} call(s) still running after FUNCTION_TIMEOUT ${timeout.text} and ${SHUTDOWN_EXTRA_MS / 1000}s; stopping anyway`);
        process.exit(0);
      }, grace);
    }
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // A promise the handler dropped must not take every other call down with it.
  process.on("unhandledRejection", (reason) => log(`unhandled promise rejection:\n${stackOf(reason)}`));

  // why: in ferry's sandbox the function has a network of its own and cannot
  // bind the host's loopback; ferry opens the socket and hands it over as the
  // descriptor FERRY_LISTEN_FD names. Without it, 127.0.0.1 only: nothing but
  // ferry's gateway and triggers may reach a function. FERRY_LISTEN_ADDR
  // replaces 127.0.0.1 where the network is the function's own (a Kubernetes
  // pod, reached at its IP).
  const fdText = process.env.FERRY_LISTEN_FD || "";
  if (fdText !== "") {
    if (!/^[0-9]+$/.test(fdText) || Number(fdText) < 3) {
      log(`FERRY_LISTEN_FD "${fdText}" is not a file descriptor above 2`);
      process.exit(2);
    }
    server.listen({ fd: Number(fdText) }, () => log(`serving ${spec} on fd ${fdText} (port ${port})`));
  } else {
    const host = process.env.FERRY_LISTEN_ADDR || "127.0.0.1";
    if (net.isIP(host) === 0) {
      log(`FERRY_LISTEN_ADDR "${host}" is not an IP address such as 0.0.0.0`);
      process.exit(2);
    }
    server.listen(port, host, () => log(`serving ${spec} on ${host}:${server.address().port}`));
  }
}

main().catch((err) => {
  log(`failed:\n${stackOf(err)}`);
  process.exit(1);
});
