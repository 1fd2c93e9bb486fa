package server

// routesEnvironments registers the environments matrix, history and rollback — ui_environments.go.
func (u *uiServer) routesEnvironments() {}
