package notify_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrycd/ferry/server/notify"
)

// A receiver that answers 3xx must not steer ferry's POST elsewhere: the
// Slack URL is a secret (a redirect would carry it on in Referer) and the
// target may be an address only ferry's host can reach.
func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	var inside atomic.Int32
	var referer atomic.Value
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside.Add(1)
		referer.Store(r.Header.Get("Referer"))
	}))
	defer internal.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, internal.URL+"/admin", code)
		}))
		const secretPath = "/services/T000/B000/hooksecret"
		sinks := []notify.Sink{}
		s, err := notify.NewSlack(notify.SlackConfig{Name: "chat", URL: hostile.URL + secretPath})
		if err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, s)
		w, err := notify.NewWebhook(notify.WebhookConfig{Name: "hook", URL: hostile.URL + secretPath, Secret: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, w)
		for _, sink := range sinks {
			ds, err := sink.Plan(notify.Event{Kind: notify.RunFailed, Source: "app"})
			if err != nil || len(ds) != 1 {
				t.Fatalf("%s: plan: %v %d", sink.Name(), err, len(ds))
			}
			err = sink.Deliver(context.Background(), ds[0].Body)
			if err == nil {
				t.Errorf("%s: a %d answer was taken as delivered", sink.Name(), code)
			} else if strings.Contains(err.Error(), "hooksecret") {
				t.Errorf("%s: the error repeats the secret URL: %v", sink.Name(), err)
			}
			var perm *notify.PermanentError
			if !errors.As(err, &perm) {
				t.Errorf("%s: a %d answer is retried forever (%v); a redirect is a configuration to mend", sink.Name(), code, err)
			}
		}
		hostile.Close()
	}
	if n := inside.Load(); n != 0 {
		ref, _ := referer.Load().(string)
		t.Fatalf("the redirect was followed %d times to the internal address (Referer %q)", n, ref)
	}
}

// A receiver answering with an endless body is read only as far as the
// excerpt and the drain's bound.
func TestDeliverBoundsAHugeAnswer(t *testing.T) {
	var wrote atomic.Int64
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		buf := []byte(strings.Repeat("x", 1<<16))
		for i := 0; i < 1<<12; i++ { // 256 MiB if all were read
			n, err := w.Write(buf)
			wrote.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	s, err := notify.NewSlack(notify.SlackConfig{Name: "chat", URL: huge.URL + "/x"})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Plan(notify.Event{Kind: notify.RunFailed, Source: "app"})
	err = s.Deliver(context.Background(), ds[0].Body)
	if err == nil || len(err.Error()) > 1000 {
		t.Fatalf("error %d bytes: %.200v", len(fmtErr(err)), err)
	}
	huge.CloseClientConnections()
	if n := wrote.Load(); n > 64<<20 {
		t.Fatalf("ferry read %d bytes of the answer", n)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
