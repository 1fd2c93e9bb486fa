// Package dispatch owns the trigger dispatchers: cron schedules, NATS
// subscriptions and Kafka consumer groups that turn ticks and messages
// into CloudEvents and deliver them to functions, with retries and
// fan-out. Both targets run this same code: the embedded controller in
// ferry's process, calling functions through its gateway, and a
// Kubernetes cluster in a dispatcher Deployment (`ferry dispatch`), calling
// functions through their Services. How a function is reached is the
// caller's (Invoker); what is sent and when is this package's.
package dispatch
