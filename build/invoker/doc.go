// Package invoker owns the code ferry puts into every function image to
// serve the function contract: the Python and Node.js invokers (ferry's
// own code, embedded in the ferry binary and added to an image as their
// own layer) and the Go main that ferry generates around a Go handler.
//
// The contract, the same for every runtime:
//
//   - The process serves HTTP on 127.0.0.1:$PORT (default 8080), never on
//     every address: nothing but ferry's gateway and triggers may reach
//     it. When FERRY_LISTEN_FD names a file descriptor (3, as ferry's
//     embedded target passes it), it serves on that listening socket
//     instead: ferry opened it on the host's loopback, because a function
//     in ferry's sandbox has a network namespace of its own. When
//     FERRY_LISTEN_ADDR is an IP address (0.0.0.0 in a Kubernetes pod,
//     whose network namespace is its own, so the kubelet's probes and the
//     Service reach it at the pod's IP), it serves on that address and
//     $PORT instead of 127.0.0.1.
//   - GET or HEAD /healthz answers 200 "ok" (HEAD without the body) once the
//     handler is loaded. A handler that cannot be loaded ends the process
//     with a non-zero status and a message on stderr that names the handler
//     and the reason.
//   - GET or HEAD /metrics serves the Prometheus text format:
//     function_calls_total, function_failures_total (counters) and
//     function_duration_seconds (histogram), each labelled
//     function="$FUNCTION_NAME".
//   - Any other request, any other method on /healthz and /metrics too, is
//     an invocation. A CloudEvents 1.0 request in binary mode carries the
//     event's attributes in ce-* headers (ce-id, ce-source, ce-type and
//     ce-specversion required; ce-time, ce-subject and ce-dataschema
//     optional; every other ce-* header is an extension) and its data in the
//     body, typed by Content-Type. A ce-* value is percent-decoded when it
//     decodes to UTF-8, and of a header sent more than once the first
//     counts. A request with ce-specversion other than 1.0, or with it but
//     without ce-id, ce-source or ce-type, gets 400 naming the header. So
//     does a ce-time that is not RFC 3339 as Go's time.RFC3339 writes it:
//     YYYY-MM-DDTHH:MM:SS with upper-case T, seconds 00-59, an optional
//     fraction after a full stop, then Z or ±HH:MM up to 23:59, on a day the
//     month has (2024-05-01T12:00:00Z, 2024-05-01T14:00:00.5+02:00). A plain
//     request (no ce-specversion) is turned into an event with a fresh id,
//     the current time, source "/", type "dev.ferry.http.request" and the
//     body as data, so a browser or curl can call a function directly.
//   - Data whose Content-Type is JSON (application/json or */*+json) is
//     decoded, and must be UTF-8 JSON without a byte order mark that nests
//     at most 512 arrays and objects: any other body gets 400. A body with
//     no Content-Type is decoded when it is such JSON, and bytes otherwise.
//     An empty body is null. text/* is a string, decoded by the charset
//     parameter when that is utf-8 (utf8), us-ascii (ascii) or iso-8859-1
//     (iso_8859-1, iso8859-1, latin1, latin-1, l1), in any case, and as
//     UTF-8 for any other charset or none; a byte the charset does not
//     allow becomes U+FFFD, one for each maximal ill-formed UTF-8
//     subsequence. Anything else is bytes. (A Go handler that takes fn.Event
//     or []byte gets the body as sent; the JSON rule above holds for it too.)
//   - A handler's result that is bytes (Python bytes, bytearray or
//     memoryview; a Node.js Buffer or other Uint8Array; a Go []byte) is
//     answered 200 as sent, Content-Type application/octet-stream. Any
//     other result is answered 200 as JSON, Content-Type application/json.
//     An error or exception is answered 500 with {"error": "<message>"} and
//     counted as a failure.
//   - A handler that has not answered FUNCTION_TIMEOUT after the call
//     began is logged on stderr then, and its call is answered 504 with
//     {"error": "timed out: the handler did not answer within
//     FUNCTION_TIMEOUT <value>"}, counted as a failure, once the handler
//     has ended, never before: that answer is how ferry's gateway learns
//     the handler is done and frees the call's concurrency slot. A Go
//     handler's context is cancelled at FUNCTION_TIMEOUT and an async
//     Python handler's task is cancelled; a sync Python handler and a
//     Node.js handler cannot be stopped and run on, their result unheard.
//     The gateway answers its caller 504 itself at its own deadline, which
//     is never later (its clock starts before the request is sent), so a
//     caller sees 504 from one or the other, never a race between them.
//   - After SIGTERM (or SIGINT) the process stops taking connections, gives
//     the calls in flight FUNCTION_TIMEOUT and one second more to be
//     answered, and exits 0.
//   - A connection is closed when it takes more than 10 seconds to send a
//     request's line and headers, or waits 2 minutes between requests.
//   - The environment gives FUNCTION_NAME, FUNCTION_TIMEOUT (a Go duration
//     such as "30s", the default), FUNCTION_MEMORY (a quantity such as
//     "128Mi") and FERRY_HANDLER (python "module.function", nodejs
//     "file.export"). A FUNCTION_TIMEOUT that is not a positive Go duration
//     ends the process with status 1 and a message that names it.
//
// Image layout, each part its own layer in this order after the base:
// dependencies, invoker, code.
//
//	python: /ferry/deps (pip --target), /ferry/invoker/ferry_invoker.py, /ferry/function
//	nodejs: /ferry/node_modules, /ferry/invoker/ferry_invoker.js, /ferry/function
//	go:     /ferry/bin/function (static binary: invoker and code in one)
//
// The invokers find /ferry/function and the dependencies relative to their
// own file, so an image unpacked anywhere runs with the host's
// interpreter, which is how the embedded target runs images built on
// scratch.
package invoker
