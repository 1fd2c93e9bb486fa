package server

import (
	"fmt"
	"net/http"
	"strconv"
)

// The runs pages: every run, page by page; and one run with its steps,
// where its release went, and its log, drawn as far as it is written and
// then streamed from the API as it grows.

// runsPerPage is how many runs /runs lists a page: a screen or two.
const runsPerPage = 30

type runsData struct {
	Runs    []RunView
	Sources []string
	Source  string // the source the list is narrowed to; "" for all
	Before  int64  // this page's ?before=; 0 for the newest
	Next    int64  // ?before= of the older page; 0 when this is the last
}

type runData struct {
	Run   RunView
	Lines []LogLineView
	// Stream is where the browser follows the log: after the last line
	// drawn here, so no line shows twice and none is skipped.
	Stream string
	// InfraReason says what an InfraFailed run means to someone looking.
	InfraReason string
}

// infraFailedExplained is shown on a run that failed because ferry's own
// infrastructure did, so nobody goes looking for the fault in the code.
const infraFailedExplained = "ferry's own infrastructure failed (the store, the registry or the source's mirror), not the commit: ferry runs it again from its first unfinished step while this commit is the branch head."

func (u *uiServer) routesRuns() {
	u.page("GET /runs", u.runsPage)
	u.page("GET /runs/{id}", u.runPage)
	// why: not u.page, whose answer to a missing session is a redirect to
	// an HTML form, which an EventSource cannot follow; a stream says 401.
	u.mux.HandleFunc("GET /runs/{id}/logs", u.runLogsStream)
}

// uiRunID reads a run's number from the path; its error says how one
// is written.
func uiRunID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("run %q: a run is named by its number, as in /runs/12", r.PathValue("id"))
	}
	return id, nil
}

func (u *uiServer) runsPage(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	q := r.URL.Query()
	d := runsData{Source: q.Get("source")}
	var err error
	if d.Before, err = pageBefore(r); err != nil {
		return err
	}
	c := u.client(s)
	srcs, err := c.Sources(r.Context())
	if err != nil {
		return err
	}
	for _, src := range srcs {
		d.Sources = append(d.Sources, src.Name)
	}
	p, err := c.Runs(r.Context(), d.Source, runsPerPage, d.Before)
	if err != nil {
		return err
	}
	d.Runs, d.Next = p.Items, p.Next
	u.render(w, r, s, http.StatusOK, "runs", uiPage{Nav: "runs", Live: r.URL.RequestURI(), Data: d})
	return nil
}

func (u *uiServer) runPage(w http.ResponseWriter, r *http.Request, s *uiSession) error {
	id, err := uiRunID(r)
	if err != nil {
		return &StatusError{Code: http.StatusBadRequest, Message: err.Error()}
	}
	c := u.client(s)
	// why: the run is read before its lines, so when it is seen done the
	// lines read after are all it has, and the stream only ends it.
	run, err := c.Run(r.Context(), id)
	if err != nil {
		return err
	}
	d := runData{Run: run}
	if run.InfraFailed {
		d.InfraReason = infraFailedExplained
	}
	// A live update redraws only the status, steps and fate; the log is
	// the stream's, so it is not read again every poll.
	if r.Context().Value(fragmentKey{}) == nil {
		if d.Lines, err = c.Logs(r.Context(), id, 0); err != nil {
			return err
		}
		d.Stream = fmt.Sprintf("/runs/%d/logs", id)
		if n := len(d.Lines); n > 0 {
			d.Stream += "?after=" + strconv.FormatInt(d.Lines[n-1].Seq, 10)
		}
	}
	u.render(w, r, s, http.StatusOK, "run", uiPage{Nav: "runs", Live: r.URL.RequestURI(), Data: d})
	return nil
}

// runLogsStream passes on the API's stream of a run's log (server-sent
// events) to a signed-in browser, from after the line ?after= or the
// Last-Event-ID names, whichever is later: the page asks for the lines
// after those it drew, and a reconnecting EventSource names the last
// line it got, with the page's ?after= still in its URL.
func (u *uiServer) runLogsStream(w http.ResponseWriter, r *http.Request) {
	s, ok := u.sessions.fromRequest(r, u.tokens)
	if !ok {
		http.Error(w, "sign in first, then open the run's page again", http.StatusUnauthorized)
		return
	}
	id, err := uiRunID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var after int64
	for _, v := range []string{r.URL.Query().Get("after"), r.Header.Get("Last-Event-ID")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("after %q: give the seq of the last line you have", v), http.StatusBadRequest)
			return
		}
		after = max(after, n)
	}
	u.proxy(w, r, s, fmt.Sprintf("/api/v1/runs/%d/logs?follow=true&after=%d", id, after))
}
