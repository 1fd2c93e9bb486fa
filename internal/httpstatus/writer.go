package httpstatus

import "net/http"

// Writer notes the status code its handler answered with.
type Writer struct {
	http.ResponseWriter
	code int
}

// New returns a Writer around w.
func New(w http.ResponseWriter) Writer { return Writer{ResponseWriter: w} }

func (s *Writer) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *Writer) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer, to
// flush and hijack.
func (s *Writer) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Status is the code answered: 200 for a handler that wrote nothing, as
// the server answers it.
func (s *Writer) Status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
