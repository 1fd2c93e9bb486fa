package fn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/build/fn"
)

func TestDecodeData(t *testing.T) {
	type order struct {
		Item string `json:"item"`
		N    int    `json:"n"`
	}
	for _, tc := range []struct {
		name, contentType, data string
		want                    order
		wantErr                 string
	}{
		{name: "json", contentType: "application/json", data: `{"item":"tea","n":2}`, want: order{"tea", 2}},
		{name: "json with charset", contentType: "application/json; charset=utf-8", data: `{"item":"tea"}`, want: order{Item: "tea"}},
		{name: "plus json", contentType: "application/cloudevents+json", data: `{"n":3}`, want: order{N: 3}},
		{name: "upper case", contentType: "Application/JSON", data: `{"n":4}`, want: order{N: 4}},
		{name: "no content type", data: `{"item":"cake"}`, want: order{Item: "cake"}},
		{name: "empty is null", contentType: "application/json"},
		{name: "empty without type"},
		{name: "text", contentType: "text/plain", data: `{"n":1}`, wantErr: `content type "text/plain", not JSON`},
		{name: "bytes", contentType: "application/octet-stream", data: "\x00", wantErr: "not JSON"},
		{name: "bad json", contentType: "application/json", data: `{"n":`, wantErr: "decoding the data of event e1"},
		{name: "wrong shape", data: `[1]`, wantErr: "cannot unmarshal array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := fn.Event{ID: "e1", DataContentType: tc.contentType, Data: []byte(tc.data)}
			var got order
			err := e.DecodeData(&got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeData() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeData() error = %v", err)
			}
			if got != tc.want {
				t.Errorf("DecodeData() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestContext(t *testing.T) {
	if _, ok := fn.FromContext(context.Background()); ok {
		t.Fatal("FromContext(Background) reported an event")
	}
	want := fn.Event{ID: "1", Source: "/s", Type: "t", SpecVersion: "1.0", Extensions: map[string]string{"x": "y"}}
	got, ok := fn.FromContext(fn.NewContext(context.Background(), want))
	if !ok || got.ID != want.ID || got.Extensions["x"] != "y" {
		t.Fatalf("FromContext(NewContext(e)) = %+v, %v; want %+v, true", got, ok, want)
	}
}

func ExampleFromContext() {
	handle := func(ctx context.Context, in struct{ Name string }) (any, error) {
		e, _ := fn.FromContext(ctx)
		return fmt.Sprintf("hello %s, from event %s of type %s", in.Name, e.ID, e.Type), nil
	}
	ctx := fn.NewContext(context.Background(), fn.Event{ID: "42", Type: "dev.ferry.http.request"})
	out, _ := handle(ctx, struct{ Name string }{"ferry"})
	fmt.Println(out)
	// Output: hello ferry, from event 42 of type dev.ferry.http.request
}
