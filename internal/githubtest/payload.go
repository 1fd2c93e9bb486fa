package githubtest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Delete, as a value given to Payload, removes the field.
var Delete = &struct{ delete bool }{true}

// Payload reads the webhook payload in file (a delivery as GitHub
// documents it) and sets the fields of set: a dotted path to a value; nil
// makes JSON null, and Delete removes the field. Tests change only what
// they are about, so the rest stays GitHub's shape.
func Payload(t testing.TB, file string, set map[string]any) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for path, v := range set {
		keys := strings.Split(path, ".")
		obj := m
		for _, k := range keys[:len(keys)-1] {
			next, ok := obj[k].(map[string]any)
			if !ok {
				t.Fatalf("%s has no object %s on the way to %s", file, k, path)
			}
			obj = next
		}
		if v == Delete {
			delete(obj, keys[len(keys)-1])
		} else {
			obj[keys[len(keys)-1]] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
