// Package server owns ferry's HTTP surface: the API, the webhook
// endpoints, the web dashboard and Prometheus metrics, and ferry serve's
// configuration.
//
// server is ferry's composition root, and with cmd the only package that
// knows the concrete targets (hack/imports.sh holds it): Serve (serve.go)
// starts the parts in order, one function each, and the target factory
// (targets.go) makes each environment's target from its target:
// (embedded, or kube through newKubeTarget), which the rest of ferry
// sees as environments.Target.
//
// Decisions about trust kept here:
//   - The configuration is decoded by the manifests' strict decoder, so its
//     mistakes read like a manifest's (file:line:col, what to do).
//   - Sources' secrets are never stored in the clear (secrets.go): the
//     API's are sealed with ferry's key, the configuration's stay $VAR
//     references and key file paths, read when needed.
//   - A source added through the API is checked before anything is stored
//     (sourceurl.go): a local repository only under localRoots, with its
//     symlinks resolved first.
//   - Webhook deliveries that synced are remembered in the store for a day,
//     so a replay after a restart still changes nothing.
//   - Reading a function's log takes the viewer role; calling a function
//     through the API (api_logs.go) takes deployer, since a call runs the
//     function's code with its secrets. The caller's token never reaches
//     the function: only Content-Type and ce-* headers are passed on.
//   - /metrics (metrics.go) takes any token, a viewer's included, as a
//     scraper only reads; /debug/pprof/ takes admin, since a heap profile
//     holds what ferry holds, secrets included.
package server
