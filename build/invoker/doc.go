// Package invoker owns the code ferry puts into every function image to
// serve the function contract: the Python and Node.js invokers (ferry's
// own code, embedded in the ferry binary and added to an image as their
// own layer) and the Go main that ferry generates around a Go handler.
//
// The contract, the same for every runtime:
//
//   - The process serves HTTP on $PORT (default 8080).
//   - GET /healthz answers 200 "ok" once the handler is loaded. A handler
//     that cannot be loaded ends the process with a non-zero status and a
//     message on stderr that names the handler and the reason.
//   - GET /metrics serves the Prometheus text format:
//     function_calls_total, function_failures_total (counters) and
//     function_duration_seconds (histogram), each labelled
//     function="$FUNCTION_NAME".
//   - Any other request is an invocation. A CloudEvents 1.0 request in
//     binary mode carries the event's attributes in ce-* headers (ce-id,
//     ce-source, ce-type and ce-specversion required; ce-time, ce-subject
//     and ce-dataschema optional; every other ce-* header is an extension)
//     and its data in the body, typed by Content-Type. A request with
//     ce-specversion other than 1.0, or with it but without ce-id,
//     ce-source or ce-type, gets 400 naming the header. A plain request
//     (no ce-specversion) is turned into an event with a fresh id, the
//     current time, source "/", type "dev.ferry.http.request" and the body
//     as data, so a browser or curl can call a function directly.
//   - Data whose Content-Type is JSON (application/json or */*+json, or
//     none with a non-empty body that parses as JSON) is decoded; an empty
//     body is null; text/* is a string; anything else is bytes.
//   - The handler's result is answered 200 as JSON (Content-Type
//     application/json). An error or exception is answered 500 with
//     {"error": "<message>"} and counted as a failure.
//   - The environment gives FUNCTION_NAME, FUNCTION_TIMEOUT (a Go duration
//     such as "30s"), FUNCTION_MEMORY (a quantity such as "128Mi") and
//     FERRY_HANDLER (python "module.function", nodejs "file.export").
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
