package kube

import (
	"net/http"
	"testing"
)

// TestToPod: a plain request reaches the pod as the embedded gateway
// forwards it, a binary-mode CloudEvent with the request's method, path
// and query; a CloudEvent passes with its own attributes.
func TestToPod(t *testing.T) {
	tg := &Target{cfg: Config{Environment: "dev"}}
	r := route{path: "/hello", function: "hello"}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "/hello/?name=a%20b", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain")
	out := tg.toPod(t.Context(), req, r, "127.0.0.1:4321")
	if out.URL.String() != "http://127.0.0.1:4321/hello/?name=a%20b" {
		t.Errorf("sent to %s", out.URL)
	}
	want := map[string]string{
		"Ce-Specversion": "1.0", "Ce-Type": "dev.ferry.http.request", "Ce-Source": "/dev/hello",
		"Ce-Httpmethod": "GET", "Ce-Httppath": "/hello/", "Ce-Httpquery": "name=a%2520b", "Accept": "text/plain",
	}
	for k, v := range want {
		if got := out.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if out.Header.Get("Ce-Id") == "" || out.Header.Get("Ce-Time") == "" {
		t.Errorf("no ce-id or ce-time: %v", out.Header)
	}

	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "mine")
	req.Header.Set("Ce-Type", "com.example.order")
	out = tg.toPod(t.Context(), req, r, "127.0.0.1:4321")
	if out.Header.Get("Ce-Id") != "mine" || out.Header.Get("Ce-Type") != "com.example.order" || out.Header.Get("Ce-Httppath") != "" {
		t.Errorf("a CloudEvent was changed on its way: %v", out.Header)
	}
}
