// Package server owns ferry's HTTP surface: the API, the webhook
// endpoints, the web dashboard and Prometheus metrics.
package server
