package github

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/server/notify"
)

const tokenPath = "POST /app/installations/77/access_tokens"

// appClient is a client authenticated as an App the stand-in knows, whose
// installation tokens live ttl.
func appClient(t *testing.T, gs *githubtest.Server, ttl time.Duration) *Client {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	gs.SetApp(githubtest.App{ID: 4242, InstallationID: 77, Key: &key.PublicKey, TokenTTL: ttl})
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	c, err := New(Config{APIURL: gs.URL, App: &App{ID: 4242, InstallationID: 77, PrivateKey: pemKey}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tokenFetches(gs *githubtest.Server) int {
	n := 0
	for _, r := range gs.Requests() {
		if r == tokenPath {
			n++
		}
	}
	return n
}

func stepEvent(step string) notify.Event {
	ev := event(notify.StepStarted)
	ev.Step = step
	return ev
}

func TestAppTokenFetchedOnceAndRenewedWhenRefused(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, appClient(t, gs, time.Hour), openStore(t))

	// Concurrent first calls share one token.
	var wg sync.WaitGroup
	for _, step := range []string{"a", "b", "c", "d"} {
		wg.Go(func() { mustDeliver(t, s, stepEvent(step)) })
	}
	wg.Wait()
	if n := tokenFetches(gs); n != 1 {
		t.Fatalf("%d installation tokens fetched for four calls, want 1", n)
	}
	// GitHub refuses the token (expired early, revoked): the call gets
	// a new one and goes through.
	gs.ExpireTokens()
	mustDeliver(t, s, stepEvent("e"))
	if n := tokenFetches(gs); n != 2 {
		t.Errorf("%d installation tokens fetched, want 2 (one more after the 401)", n)
	}
	if n := len(gs.Statuses(owner, name, sha1)); n != 5 {
		t.Errorf("%d statuses, want 5", n)
	}
}

func TestAppTokenRenewedBeforeExpiry(t *testing.T) {
	gs := githubtest.New(t)
	// Tokens living less than refreshEarly are renewed on every call:
	// none is used within five minutes of its end.
	s := newSink(t, appClient(t, gs, refreshEarly-time.Minute), openStore(t))
	mustDeliver(t, s, stepEvent("a"))
	mustDeliver(t, s, stepEvent("b"))
	if n := tokenFetches(gs); n != 2 {
		t.Errorf("%d installation tokens fetched, want 2 (each about to expire)", n)
	}
	reqs := gs.Requests()
	if i := slices.Index(reqs, tokenPath); i != 0 {
		t.Errorf("requests %v: the token was not fetched first", reqs)
	}
}

func TestReposFor(t *testing.T) {
	rs := Repos{Named: map[string]Repo{"named": {"corp", "app"}}, Host: "github.com"}
	cases := []struct {
		source, url string
		want        string
	}{
		{"named", "https://gitlab.com/x/y.git", "corp/app"},
		{"s", "https://github.com/acme/shop.git", "acme/shop"},
		{"s", "https://github.com/acme/shop", "acme/shop"},
		{"s", "ssh://git@github.com/acme/shop.git", "acme/shop"},
		{"s", "git@github.com:acme/shop.git", "acme/shop"},
		{"s", "https://gitlab.com/acme/shop.git", ""},
		{"s", "/srv/git/shop", ""},
		{"s", "https://github.com/acme", ""},
	}
	for _, tc := range cases {
		r, ok := rs.For(tc.source, tc.url)
		got := ""
		if ok {
			got = r.String()
		}
		if got != tc.want {
			t.Errorf("For(%s, %s) = %q, want %q", tc.source, tc.url, got, tc.want)
		}
	}
}
