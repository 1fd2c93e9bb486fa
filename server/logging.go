package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// Log formats of ferry serve (logFormat, --log-format).
const (
	// LogText is for people: "15:04:05 message key=value …", one a line.
	LogText = "text"
	// LogJSON is for log collectors: one JSON object a line, with time,
	// level, msg and the outcome's fields.
	LogJSON = "json"
)

// LogFormats are the values logFormat takes.
var LogFormats = []string{LogText, LogJSON}

// newLogger makes ferry serve's logger writing to out in format.
func newLogger(out io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "", LogText:
		return slog.New(&textHandler{out: out, mu: &sync.Mutex{}}), nil
	case LogJSON:
		return slog.New(slog.NewJSONHandler(&lockedWriter{w: out}, nil)), nil
	}
	return nil, fmt.Errorf("log format %q: give one of %s", format, strings.Join(LogFormats, ", "))
}

// lockedWriter keeps lines whole when the writer is shared.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// textHandler writes "15:04:05 [LEVEL ]message key=value …": the clock
// time is enough for someone watching, and the message reads first.
type textHandler struct {
	out   io.Writer
	mu    *sync.Mutex
	attrs []slog.Attr
	group string
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("15:04:05 "))
	if r.Level != slog.LevelInfo {
		b.WriteString(r.Level.String() + " ")
	}
	// why: messages quote what others wrote (a function's answer to a
	// trigger, a Kafka record's ce_id, an error's text); a newline in one
	// would start a line of ferry's own, and an escape sequence would
	// rewrite the reader's terminal.
	writeEscaped(&b, r.Message)
	for _, a := range h.attrs {
		writeAttr(&b, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.out.Write(b.Bytes())
	return err
}

func writeAttr(b *bytes.Buffer, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	// why: any character that is not printed as itself (a carriage
	// return, an escape, a line separator) is quoted too, as a newline is,
	// so that a value cannot end its line or hide what precedes it.
	if v == "" || strings.ContainsAny(v, " \"=") || strings.ContainsFunc(v, notPrintable) || !utf8.ValidString(v) {
		v = strconv.Quote(v)
	}
	fmt.Fprintf(b, " %s%s=%s", prefix, a.Key, v)
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// writeEscaped writes s with every character that is not printed as
// itself (control characters, invalid UTF-8, line separators) as its Go
// escape: \n, \x1b, \u2028. A message of ordinary text is unchanged.
func writeEscaped(b *bytes.Buffer, s string) {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(b, `\x%02x`, s[0])
		case r == ' ' || unicode.IsPrint(r):
			b.WriteString(s[:n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[n:]
	}
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		a.Key = h.group + a.Key
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.group = h.group + name + "."
	return &n
}

// outcomes turns the promoter's and the pipeline's events into one log
// line each: the message says what happened, the fields say to what.
type outcomes struct{ log *slog.Logger }

// promotion is promote.Events.
func (o outcomes) promotion(ev promote.Event) {
	if ev.Kind == promote.EventDeploying {
		return // "deployed" or "deploy failed" follows at once
	}
	attrs := []any{slog.String("env", ev.Environment)}
	if ev.Release != "" {
		attrs = append(attrs, slog.String("release", store.Short(ev.Release)))
	}
	if ev.Promotion != 0 {
		attrs = append(attrs, slog.Int64("promotion", ev.Promotion))
	}
	if ev.Actor != "" {
		attrs = append(attrs, slog.String("actor", ev.Actor))
	}
	msg := string(ev.Kind)
	switch ev.Kind {
	case promote.EventDeployed:
		msg = "deployed to " + ev.Environment
	case promote.EventDeployFailed:
		msg = "deploying to " + ev.Environment + " failed"
	case promote.EventWaiting:
		msg = "waiting for " + plural(ev.Approvals, "approval")
		attrs = append(attrs, slog.Int("approvals", ev.Approvals))
	case promote.EventApproved, promote.EventRejected:
		msg = string(ev.Kind) + " by " + ev.Actor
	case promote.EventFrozen, promote.EventUnfrozen, promote.EventResumed, promote.EventRolledBack:
		msg = ev.Environment + " " + string(ev.Kind)
	}
	if ev.Reason != "" {
		attrs = append(attrs, slog.String("reason", ev.Reason))
	}
	level := slog.LevelInfo
	switch ev.Kind {
	case promote.EventDeployFailed, promote.EventVerifyFailed, promote.EventRolledBack, promote.EventPromotionError:
		level = slog.LevelWarn
	}
	o.log.Log(context.Background(), level, msg, attrs...)
}

// run is pipeline.Config.Events.
func (o outcomes) run(ev pipeline.Event) {
	switch ev.Kind {
	case pipeline.EventStepStarted, pipeline.EventStepEnded, pipeline.EventDeploying, pipeline.EventDeployFailed:
		// why: a line per step would bury the outcomes; the run's logs
		// have the steps, and "run finished" names the step that failed.
		return
	}
	attrs := []any{slog.Int64("run", ev.Run.ID), slog.String("source", ev.Run.Source),
		slog.String("branch", ev.Run.Branch), slog.String("commit", store.Short(ev.Run.Commit))}
	msg, level := string(ev.Kind), slog.LevelInfo
	switch ev.Kind {
	case pipeline.EventRunFinished:
		attrs = append(attrs, slog.String("status", string(ev.Run.Status)))
		if ev.Run.Release != "" {
			attrs = append(attrs, slog.String("release", store.Short(ev.Run.Release)))
		}
		if ev.Step != "" {
			level = slog.LevelWarn
			attrs = append(attrs, slog.String("step", ev.Step), slog.String("error", ev.Error))
		}
	case pipeline.EventReleaseMade:
		attrs = append(attrs, slog.String("release", store.Short(ev.Release)))
	case pipeline.EventDeployed:
		msg = "deployed to " + ev.Environment
		attrs = append(attrs, slog.String("env", ev.Environment), slog.String("release", store.Short(ev.Release)))
	}
	o.log.Log(context.Background(), level, msg, attrs...)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
