package server

// routesReleases registers releases, diff and previews — ui_releases.go.
func (u *uiServer) routesReleases() {}
