package hello

import (
	"context"
	"encoding/json"
)

// Reply is what the function answers, as JSON.
type Reply struct {
	Message string          `json:"message"`
	Echo    json.RawMessage `json:"echo"`
}

// Handle is the function's entry point. ferry calls it with the event's
// data decoded into the second parameter; here it is kept as raw JSON so
// any data is echoed back unchanged.
func Handle(ctx context.Context, data json.RawMessage) (any, error) {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return Reply{Message: "hello from go", Echo: data}, nil
}
