package server

import (
	"bytes"
	"io"
	"net/http"
)

// The dashboard reads and acts through the API in-process: a Client whose
// transport calls the API's handler directly, as the session's identity.

// client returns an API client acting as s's identity.
func (u *uiServer) client(s *uiSession) *Client {
	return &Client{Server: "http://ferry.in-process", Token: "in-process", HTTP: &http.Client{Transport: inProcess{h: u.cfg.API, id: s.id}}}
}

// inProcess is an http.RoundTripper that serves requests with h.
type inProcess struct {
	h  http.Handler
	id Identity
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(withIdentity(req.Context(), t.id))
	req.RequestURI = req.URL.RequestURI()
	rec := newRecorder()
	t.h.ServeHTTP(rec, req)
	return &http.Response{StatusCode: rec.code, Status: http.StatusText(rec.code), Header: rec.header,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()), Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// recorder keeps a handler's answer in memory.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, code: http.StatusOK} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// proxy hands r to the API as s's identity, at path (with its query):
// for answers that stream, such as a run's log as server-sent events.
func (u *uiServer) proxy(w http.ResponseWriter, r *http.Request, s *uiSession, pathAndQuery string) {
	if r.Context().Value(fragmentKey{}) != nil {
		// why: a live update renders pages; a stream rendered into memory
		// would never end.
		http.Error(w, "a stream is not a page", http.StatusBadRequest)
		return
	}
	r2 := r.Clone(withIdentity(r.Context(), s.id))
	r2.Method = http.MethodGet
	r2.Body = http.NoBody
	u2, err := r.URL.Parse(pathAndQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r2.URL = u2
	r2.RequestURI = u2.RequestURI()
	u.cfg.API.ServeHTTP(w, r2)
}
