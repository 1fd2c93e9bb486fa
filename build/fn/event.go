package fn

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Event is one CloudEvents 1.0 event as a function receives it. A plain
// HTTP request (one without ce-* headers) arrives as an event with a fresh
// ID, Source "/", Type "dev.ferry.http.request" and the body as Data.
type Event struct {
	ID              string    // ce-id
	Source          string    // ce-source
	Type            string    // ce-type
	SpecVersion     string    // ce-specversion, always "1.0"
	Subject         string    // ce-subject, may be empty
	DataSchema      string    // ce-dataschema, may be empty
	DataContentType string    // the request's Content-Type, may be empty
	Time            time.Time // ce-time; zero when the sender gave none
	Data            []byte    // the request body, unchanged

	// Extensions holds every other ce-* header, keyed by the attribute
	// name without the "ce-" prefix, lower case.
	Extensions map[string]string
}

// DecodeData decodes the event's JSON data into v, as json.Unmarshal
// does. Empty data is JSON null and leaves v unchanged. Data whose content
// type is set and is not JSON (application/json or a */*+json type) is an
// error, so that a text or binary body is not misread: read e.Data for
// those.
func (e Event) DecodeData(v any) error {
	if ct := e.DataContentType; ct != "" && !isJSON(ct) {
		return fmt.Errorf("fn: event %s has data of content type %q, not JSON (read Event.Data instead)", e.ID, ct)
	}
	if len(e.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("fn: decoding the data of event %s: %w", e.ID, err)
	}
	return nil
}

// isJSON reports whether a Content-Type names JSON: application/json or
// any */*+json type, parameters ignored.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

type eventKey struct{}

// NewContext returns a copy of ctx that carries e. ferry's generated main
// calls it for every invocation, whatever the handler's signature.
func NewContext(ctx context.Context, e Event) context.Context {
	return context.WithValue(ctx, eventKey{}, e)
}

// FromContext returns the event carried by ctx, and false when there is
// none (outside an invocation, e.g. in a unit test that did not call
// NewContext).
func FromContext(ctx context.Context) (Event, bool) {
	e, ok := ctx.Value(eventKey{}).(Event)
	return e, ok
}
