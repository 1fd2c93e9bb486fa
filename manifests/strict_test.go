package manifests

import (
	"strings"
	"testing"
	"time"
)

type strictConfig struct {
	Name    string            `yaml:"name"`
	Port    uint16            `yaml:"port"`
	Ratio   float64           `yaml:"ratio"`
	Labels  map[string]string `yaml:"labels"`
	Items   []strictItem      `yaml:"items"`
	Status  string            `yaml:"status"`
	Untaged string
	Wait    time.Duration `yaml:"wait"`
	Free    any           `yaml:"free"`
}

type strictItem struct {
	Key string `yaml:"key"`
}

func TestDecodeStrict(t *testing.T) {
	var c strictConfig
	origin, err := DecodeStrict("c.yaml", []byte("name: a\nport: 8080\nratio: 1\nstatus: ok\nuntaged: x\nitems:\n- key: k\nwait: 90s\nfree: {a: [1, b]}\n"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "a" || c.Port != 8080 || c.Ratio != 1 || c.Status != "ok" || c.Untaged != "x" || len(c.Items) != 1 || c.Items[0].Key != "k" || c.Wait != 90*time.Second || c.Free == nil {
		t.Errorf("decoded %+v", c)
	}
	if p := origin.At("items[0].key"); p.String() != "c.yaml:7:8" {
		t.Errorf("items[0].key at %s", p)
	}

	_, err = DecodeStrict("c.yaml", []byte("name: [a]\nport: 70000\nitems:\n- kee: k\nlabels: {a: 1}\nwait: 5\n"), &c)
	for _, want := range []string{
		"c.yaml:1:7: name: expected a string, got a list",
		"c.yaml:2:7: port: 70000 is not a whole number from 0 to 65535",
		`c.yaml:4:3: items[0].kee: unknown key; did you mean "key"? the keys allowed in items[0] are key`,
		`c.yaml:5:13: labels.a: expected a string, got the number 1 (quote it: "1")`,
		`c.yaml:6:7: wait: expected a duration such as 500ms, 10s or 1m30s, got the number 5`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the errors do not say %q:\n%v", want, err)
		}
	}
	// An alias bomb is refused before it expands.
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	if _, err := DecodeStrict("c.yaml", []byte(bomb), &c); err == nil || !strings.Contains(err.Error(), "alias bomb") {
		t.Errorf("an alias bomb: %v", err)
	}
	if _, err := DecodeStrict("c.yaml", nil, c); err == nil {
		t.Error("a struct, not a pointer, was accepted")
	}
}
