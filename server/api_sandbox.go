package server

import (
	"context"
	"net/http"
)

// ServerView is what the server says about itself: how it confines
// repository code, for ferry status.
type ServerView struct {
	// Sandbox is "bwrap", "bwrap (network: host)" or
	// "none (repository code runs as ferry!)".
	Sandbox string `json:"sandbox"`
}

func (a *api) getServer(w http.ResponseWriter, _ *http.Request, _ Identity) error {
	writeJSON(w, http.StatusOK, ServerView{Sandbox: a.cfg.Sandbox})
	return nil
}

// ServerInfo asks the server how it runs repository code.
func (c *Client) ServerInfo(ctx context.Context) (ServerView, error) {
	var v ServerView
	err := c.do(ctx, "GET", "/api/v1/server", nil, &v)
	return v, err
}
