// Package embedded owns the embedded target: functions of an environment
// run as child processes of ferry on loopback ports, behind ferry's
// gateway, with no cluster. Images are pulled by digest and unpacked once
// into a content-addressed cache that every environment shares; a Python
// or Node.js image built on scratch runs with the host's interpreter, a Go
// image runs its static binary.
//
// Each function has one log per environment (logs.go) that outlives its
// processes and releases: what it writes, its supervisor's lines and the
// gateway's access line per call, in a bounded ring that the API reads
// and follows, and appended to a file under the data folder. The gateway
// serves /_ferry/metrics for its calls and for every trigger's ticks,
// deliveries, failures and retries (metrics_gateway.go); Host.Collector
// hands the same to ferry serve's /metrics.
//
// A function's variables are resolved per environment at each Apply (an
// EnvResolver, which the server backs with the environment's sealed
// secrets and configured overrides), all before any process starts, so a
// missing secret fails the Apply with the previous release still serving.
// A trigger runs only in the environments its spec.environments lists.
// Cron, NATS and Kafka triggers are environments/dispatch's dispatchers,
// which every target shares; this package only hands them its gateway as
// their Invoker (triggers.go).
//
// Timeouts: the gateway alone answers a caller's timeout (504 at the
// route's deadline, decided by its own clock, forward.go), and the call
// keeps its concurrency slot until the function answers it, which the
// invokers do only when the handler has ended, or its connection breaks
// with the process (awaitEnd). Such overdue calls are told to the
// instance (instance.overran); when they fill the function's concurrency
// it is restarted: a fresh process takes the new calls, the old one gets
// SIGTERM and is killed once only overdue calls are left on it. The
// triggers' calls go through the same forwarder (gateway.invoke), with the
// function's timeout and a slot of its concurrency shared with the
// gateway's calls: a timed-out delivery is a failed attempt, its retries
// are the trigger's, and its call stays counted as any other.
package embedded
