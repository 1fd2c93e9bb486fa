package environments

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"
)

// Event is one CloudEvents 1.0 event as ferry sends it to a function: in
// binary mode, the attributes in ce-* headers and the data as the body.
// Every sender (the gateway's invoke route, the trigger dispatchers of
// both targets, `ferry fire`, verification) builds its request here, so
// a function sees the same headers whoever calls it.
type Event struct {
	ID, Source, Type string
	// Time is when the event happened, written with its offset (a
	// CronTrigger's tick in the trigger's time zone); zero means now, in
	// UTC.
	Time time.Time
	// ContentType is the data's media type; empty with no data.
	ContentType string
	Data        []byte
	// Extensions are further attributes, by name without "ce-" (lower
	// case, as the spec requires).
	Extensions map[string]string
}

// SetHeaders writes ev's attributes into h in binary mode.
func (ev *Event) SetHeaders(h http.Header) { ev.EachHeader(h.Set) }

// EachHeader calls set with each header of ev in binary mode, for a
// caller that writes headers its own way (the gateway's forwarder).
func (ev *Event) EachHeader(set func(name, value string)) {
	t := ev.Time
	if t.IsZero() {
		t = time.Now().UTC()
	}
	set("Ce-Specversion", "1.0")
	set("Ce-Id", ev.ID)
	set("Ce-Source", CEEscape(ev.Source))
	set("Ce-Type", ev.Type)
	set("Ce-Time", t.Format(time.RFC3339Nano))
	for k, v := range ev.Extensions {
		set(http.CanonicalHeaderKey("Ce-"+k), CEEscape(v))
	}
	if ev.ContentType != "" {
		set("Content-Type", ev.ContentType)
	}
}

// IsEvent reports whether h carries a binary-mode CloudEvent: a request
// that has one passes as it is, a plain one is made one.
func IsEvent(h http.Header) bool { return len(h["Ce-Specversion"]) > 0 }

// EventID is the ce-id of the event h carries; "" when none.
func EventID(h http.Header) string { return h.Get("Ce-Id") }

// Request is a POST of ev to url.
func (ev *Event) Request(ctx context.Context, url string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev.Data))
	if err != nil {
		return nil, err
	}
	ev.SetHeaders(req.Header)
	return req, nil
}

// CEEscape percent-encodes s as the CloudEvents HTTP binding asks of a
// header value: space, '"', '%' and every byte outside printable ASCII.
// The invokers decode it again, so a function sees the value as it was.
// Most values need nothing, and come back as they are.
func CEEscape(s string) string {
	i := 0
	for i < len(s) && !ceNeedsEscape(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if c := s[i]; ceNeedsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ceNeedsEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }
