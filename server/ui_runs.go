package server

// routesRuns registers the run page (steps, times, live log) — ui_runs.go.
func (u *uiServer) routesRuns() {}
