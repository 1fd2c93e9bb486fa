// Package dispatch owns the trigger dispatchers: cron schedules, NATS
// subscriptions and Kafka consumer groups that turn ticks and messages
// into CloudEvents (environments.Event) and deliver them to functions,
// with retries and fan-out by selector. Both targets run this same code:
// the embedded target in ferry's process, calling functions through its
// gateway, and a Kubernetes cluster in a dispatcher Deployment (`ferry
// dispatch`, Run), calling functions through their Services
// (HTTPInvoker). How a function is reached is the caller's (Invoker);
// what is sent and when is this package's. A CronTrigger on Kubernetes is
// a CronJob running `ferry fire` (Fire) instead.
//
// Delivery: a failed call is retried with the trigger's policy (backoff
// doubling up to maxBackoff), every attempt carrying the same ce-id so a
// function can drop duplicates. Core NATS cannot redeliver: a message
// whose retries fail is dropped and logged. A Kafka record that still
// fails holds its partition and is tried again, skipping nothing; offsets
// are committed once every function answered 2xx.
//
// Stopping (a removed trigger, Stop, a drained `ferry dispatch`) takes no
// new tick or message, lets the calls under way finish (their own timeout
// bounds them), makes no further retry, commits the Kafka offsets of what
// every function answered and leaves the consumer groups.
//
// This package does not import environments/embedded: the import runs
// the other way.
package dispatch
