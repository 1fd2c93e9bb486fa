package hello

import (
	"context"
	"encoding/json"
	"testing"
)

func TestHandleEchoes(t *testing.T) {
	for _, in := range []string{`{"name":"ferry"}`, `[1,2]`, `"text"`, ``} {
		out, err := Handle(context.Background(), json.RawMessage(in))
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		want := in
		if want == "" {
			want = "null"
		}
		if got := string(b); got != `{"message":"hello from go","echo":`+want+`}` {
			t.Errorf("Handle(%s) = %s", in, got)
		}
	}
}
