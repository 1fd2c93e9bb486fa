package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/saysonce"
	"github.com/ferrycd/ferry/store"
)

// TestAuditErrorAnswers503: an action refused because its audit entry
// could not be written answers 503 with what was not done and what to do,
// however deep the error was wrapped, and says each thing once.
func TestAuditErrorAnswers503(t *testing.T) {
	cause := &store.AuditError{Event: store.Event{Action: "freeze", Object: "env/staging"}, Err: errors.New("disk I/O error")}
	rec := httptest.NewRecorder()
	writeAPIError(rec, fmt.Errorf("freeze staging: %w", cause))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	var v ErrorView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	want := "freeze on env/staging was not done: its audit entry could not be written: disk I/O error; check the disk of ferry's data folder, then try again"
	if v.Error != want {
		t.Errorf("message %q\nwant %q", v.Error, want)
	}
	saysonce.Check(t, "the 503's message", v.Error)
	if !strings.Contains(promoteError(fmt.Errorf("promotion 3: %w", cause)).Error(), "freeze on env/staging was not done") {
		t.Error("the promoter's errors hide an audit failure")
	}
}
