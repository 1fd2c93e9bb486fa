package github

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
)

const (
	owner  = "acme"
	name   = "shop"
	token  = "ghp_test_token_0123456789"
	source = "shop"
	sha1   = "1111111111111111111111111111111111111111"
	sha2   = "2222222222222222222222222222222222222222"
)

func openStore(t *testing.T) *store.SQLite {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// tokenClient is a client with a personal token the stand-in knows.
func tokenClient(t *testing.T, gs *githubtest.Server) *Client {
	t.Helper()
	gs.AddToken(token)
	c, err := New(Config{APIURL: gs.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newSink(t *testing.T, c *Client, memos Memos, deployments ...string) *Sink {
	t.Helper()
	s, err := NewSink(SinkConfig{Client: c, Memos: memos, Repos: Repos{Host: "github.com"}, Deployments: deployments})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// event is an event of the test source.
func event(kind notify.Kind) notify.Event {
	return notify.Event{Kind: kind, Source: source, Repository: "https://github.com/acme/shop.git", Branch: "main", Commit: sha1, Run: 7, RunURL: "http://ferry.test/runs/7"}
}

// deliver plans ev and delivers every notice, stopping at the first
// error.
func deliver(t *testing.T, s *Sink, ev notify.Event) error {
	t.Helper()
	ds, err := s.Plan(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if err := s.Deliver(context.Background(), d.Body); err != nil {
			return err
		}
	}
	return nil
}

func mustDeliver(t *testing.T, s *Sink, ev notify.Event) {
	t.Helper()
	if err := deliver(t, s, ev); err != nil {
		t.Fatalf("%s: %v", ev.Kind, err)
	}
}

func hasLine(body, prefix string) bool {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
