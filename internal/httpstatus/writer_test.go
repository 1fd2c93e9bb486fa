package httpstatus

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriterNotesTheFirstCode(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(w *Writer)
		want int
	}{
		{"nothing", func(w *Writer) {}, http.StatusOK},
		{"body only", func(w *Writer) { w.Write([]byte("x")) }, http.StatusOK},
		{"header", func(w *Writer) { w.WriteHeader(http.StatusTeapot) }, http.StatusTeapot},
		{"header twice", func(w *Writer) { w.WriteHeader(http.StatusBadGateway); w.WriteHeader(http.StatusOK) }, http.StatusBadGateway},
	} {
		rec := httptest.NewRecorder()
		w := New(rec)
		c.do(&w)
		if got := w.Status(); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}
