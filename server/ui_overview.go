package server

import "net/http"

// The overview: the sources (last commit, poll state, errors) and the
// latest runs with their status and where their release went.

type overviewData struct {
	Sources []SourceView
	Runs    []RunView
}

// overviewRuns is how many runs the overview lists.
const overviewRuns = 20

func (u *uiServer) overview(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	c := u.client(s)
	srcs, err := c.Sources(r.Context())
	if err != nil {
		return err
	}
	runs, err := c.Runs(r.Context(), "", overviewRuns, 0)
	if err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "overview", uiPage{Nav: "overview", Live: r.URL.RequestURI(),
		Data: overviewData{Sources: srcs, Runs: runs.Items}})
	return nil
}
