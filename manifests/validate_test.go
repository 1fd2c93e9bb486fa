package manifests

import (
	"fmt"
	"strings"
	"testing"
)

// obj writes one document of a kind with a name and a spec given as YAML
// lines indented by two spaces.
func obj(kind, name, spec string) string {
	meta := fmt.Sprintf("metadata:\n  name: %s\n", name)
	if name == "" {
		meta = ""
	}
	return fmt.Sprintf("---\napiVersion: ferry.dev/v1alpha1\nkind: %s\n%sspec:\n%s", kind, meta, indent(spec))
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func fnDoc(name, spec string) string { return obj("Function", name, spec) }

func httpDoc(name, spec string) string { return obj("HTTPTrigger", name, spec) }

func pipelineDoc(spec string) string { return obj("Pipeline", "", spec) }

// TestValidationRules has a case for every validation rule: each manifest
// breaks one rule, and must fail with exactly one error, on the field at
// fault, on the line that holds it, with a message that says what to do.
func TestValidationRules(t *testing.T) {
	cases := []struct {
		name     string
		manifest string            // added after the valid python function "fn"
		extra    map[string]string // more files; "->target" makes a symlink
		field    string
		at       string // text on the error's line
		want     string // part of the message
	}{
		// names
		{name: "name missing", manifest: obj("Function", "", "runtime: python\nsource: fn"),
			field: "metadata.name", at: "apiVersion", want: "missing; every Function needs a name"},
		{name: "name not DNS-1123", manifest: fnDoc("Thumb_Nail", "runtime: python\nsource: fn"),
			field: "metadata.name", at: "Thumb_Nail", want: `such as "thumb-nail"`},
		{name: "name too long", manifest: fnDoc(strings.Repeat("a", 64), "runtime: python\nsource: fn"),
			field: "metadata.name", at: "aaaa", want: "at most 63"},
		{name: "duplicate name per kind", manifest: fnDoc("fn", "runtime: python\nsource: fn"),
			field: "metadata.name", at: "name: fn", want: `Function "fn" is declared twice (first at ferry.yaml:4:9)`},
		{name: "label key invalid", manifest: "---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata:\n  name: b\n  labels: {\"bad key\": x}\nspec: {runtime: python, source: fn}\n",
			field: `metadata.labels.bad key`, at: "labels", want: `label key "bad key"`},
		{name: "label value invalid", manifest: "---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata:\n  name: b\n  labels:\n    app: \"not ok!\"\nspec: {runtime: python, source: fn}\n",
			field: "metadata.labels.app", at: "not ok!", want: `label value "not ok!"`},
		{name: "annotation key invalid", manifest: "---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata:\n  name: b\n  annotations:\n    \"-x\": y\nspec: {runtime: python, source: fn}\n",
			field: "metadata.annotations.-x", at: "-x", want: `annotation key "-x"`},

		// runtime and handler
		{name: "runtime missing", manifest: fnDoc("b", "source: fn"),
			field: "spec.runtime", at: "spec:", want: "missing; set one of go, python, nodejs"},
		{name: "runtime unsupported", manifest: fnDoc("b", "runtime: python2\nsource: fn"),
			field: "spec.runtime", at: "python2", want: `"python2" is not supported (use go, python or nodejs)`},
		{name: "python handler form", manifest: fnDoc("b", "runtime: python\nsource: fn\nhandler: handle"),
			field: "spec.handler", at: "handler: handle", want: "is not <module>.<function>"},
		{name: "python handler file missing", manifest: fnDoc("b", "runtime: python\nsource: fn\nhandler: app.handle"),
			field: "spec.handler", at: "app.handle", want: "needs app.py or app/__init__.py in fn"},
		{name: "python default handler file missing", manifest: fnDoc("b", "runtime: python\nsource: node"),
			field: "spec.handler", at: "spec:", want: `"main.handle" (the default for python) needs main.py`},
		{name: "nodejs handler form", manifest: fnDoc("b", "runtime: nodejs\nsource: node\nhandler: ../x.handler"),
			field: "spec.handler", at: "../x.handler", want: "is not <file>.<export>"},
		{name: "nodejs handler file missing", manifest: fnDoc("b", "runtime: nodejs\nsource: node\nhandler: app.handler"),
			field: "spec.handler", at: "app.handler", want: "needs app.js, app.mjs or app.cjs in node"},
		{name: "go handler not exported", manifest: fnDoc("b", "runtime: go\nsource: gofn\nhandler: handle"),
			field: "spec.handler", at: "handler: handle", want: "is not an exported Go function name"},
		{name: "go handler func missing", manifest: fnDoc("b", "runtime: go\nsource: gofn\nhandler: Serve"),
			field: "spec.handler", at: "Serve", want: "no func Serve in package gofn"},
		{name: "go package main", manifest: fnDoc("b", "runtime: go\nsource: gomain"),
			field: "spec.source", at: "gomain", want: "is package main, which cannot be imported"},
		{name: "go no files", manifest: fnDoc("b", "runtime: go\nsource: node"),
			field: "spec.source", at: "source: node", want: "holds no Go files"},
		{name: "go file does not parse", manifest: fnDoc("b", "runtime: go\nsource: broken"),
			extra: map[string]string{"broken/x.go": "package broken\nfunc {"},
			field: "spec.source", at: "source: broken", want: "broken/x.go does not parse"},

		// source confinement
		{name: "source absolute", manifest: fnDoc("b", "runtime: python\nsource: /etc"),
			field: "spec.source", at: "/etc", want: "leaves the repository"},
		{name: "source dot-dot", manifest: fnDoc("b", "runtime: python\nsource: fn/../../x"),
			field: "spec.source", at: "fn/../../x", want: "leaves the repository"},
		{name: "source missing", manifest: fnDoc("b", "runtime: python\nsource: nothere"),
			field: "spec.source", at: "nothere", want: "does not exist in the repository"},
		{name: "source is a file", manifest: fnDoc("b", "runtime: python\nsource: README.md"),
			field: "spec.source", at: "README.md", want: "is a file"},
		{name: "source is a symlink out", manifest: fnDoc("b", "runtime: python\nsource: out"),
			extra: map[string]string{"out": "->../elsewhere"},
			field: "spec.source", at: "source: out", want: `out is a symlink to "../elsewhere", which leads outside the repository`},
		{name: "source under an absolute symlink", manifest: fnDoc("b", "runtime: python\nsource: etc/ssh"),
			extra: map[string]string{"etc": "->/etc"},
			field: "spec.source", at: "etc/ssh", want: `etc is a symlink to "/etc"`},
		{name: "symlink in source tree leads out", manifest: fnDoc("b", "runtime: python\nsource: leaky"),
			extra: map[string]string{"leaky/main.py": "def handle(e, c): pass\n", "leaky/lib/up": "->../../../x"},
			field: "spec.source", at: "source: leaky", want: `leaky/lib/up is a symlink to "../../../x"`},
		{name: "dangling symlink in source tree", manifest: fnDoc("b", "runtime: python\nsource: dangly"),
			extra: map[string]string{"dangly/main.py": "def handle(e, c): pass\n", "dangly/gone": "->nothing"},
			field: "spec.source", at: "source: dangly", want: "which does not exist"},
		{name: "symlink loop", manifest: fnDoc("b", "runtime: python\nsource: loop"),
			extra: map[string]string{"loop": "->loop2", "loop2": "->loop"},
			field: "spec.source", at: "source: loop", want: "more than 40 symlinks"},

		// env, limits, scale, test
		{name: "env name invalid", manifest: fnDoc("b", "runtime: python\nsource: fn\nenv: {\"1X\": a}"),
			field: "spec.env.1X", at: "1X", want: "is not a valid variable name"},
		{name: "env name reserved", manifest: fnDoc("b", "runtime: python\nsource: fn\nenv:\n  PORT: \"1\""),
			field: "spec.env.PORT", at: "PORT", want: "PORT is set by ferry"},
		{name: "env prefix reserved", manifest: fnDoc("b", "runtime: python\nsource: fn\nenv:\n  FUNCTION_NAME: x"),
			field: "spec.env.FUNCTION_NAME", at: "FUNCTION_NAME", want: "names starting with FUNCTION_ are set by ferry"},
		{name: "timeout not positive", manifest: fnDoc("b", "runtime: python\nsource: fn\ntimeout: 0s"),
			field: "spec.timeout", at: "timeout: 0s", want: "is not positive"},
		{name: "timeout too long", manifest: fnDoc("b", "runtime: python\nsource: fn\ntimeout: 1h"),
			field: "spec.timeout", at: "timeout: 1h", want: "longer than the limit 15m0s"},
		{name: "memory too small", manifest: fnDoc("b", "runtime: python\nsource: fn\nmemory: 128"),
			field: "spec.memory", at: "memory: 128", want: "did you mean 128Mi?"},
		{name: "memory too large", manifest: fnDoc("b", "runtime: python\nsource: fn\nmemory: 1Ti"),
			field: "spec.memory", at: "1Ti", want: "more than the maximum 64Gi"},
		{name: "scale min above max", manifest: fnDoc("b", "runtime: python\nsource: fn\nscale:\n  min: 3\n  max: 2"),
			field: "spec.scale.min", at: "min: 3", want: "more than scale.max 2"},
		{name: "scale min negative", manifest: fnDoc("b", "runtime: python\nsource: fn\nscale:\n  min: -1"),
			field: "spec.scale.min", at: "min: -1", want: "is negative"},
		{name: "scale max out of range", manifest: fnDoc("b", "runtime: python\nsource: fn\nscale:\n  max: 5000"),
			field: "spec.scale.max", at: "max: 5000", want: "use 1 to 1000"},
		{name: "concurrency out of range", manifest: fnDoc("b", "runtime: python\nsource: fn\nscale:\n  concurrency: 0"),
			field: "spec.scale.concurrency", at: "concurrency: 0", want: "use 1 to 10000"},
		{name: "test command empty", manifest: fnDoc("b", "runtime: python\nsource: fn\ntest:\n  command: []"),
			field: "spec.test.command", at: "command: []", want: "give the test's command"},
		{name: "test timeout too long", manifest: fnDoc("b", "runtime: python\nsource: fn\ntest:\n  command: [x]\n  timeout: 3h"),
			field: "spec.test.timeout", at: "timeout: 3h", want: "longer than the limit 2h0m0s"},
		{name: "test env reserved", manifest: fnDoc("b", "runtime: python\nsource: fn\ntest:\n  command: [x]\n  env: {K_SERVICE: x}"),
			field: "spec.test.env.K_SERVICE", at: "K_SERVICE", want: "names starting with K_"},

		// what triggers call
		{name: "function and selector", manifest: httpDoc("h", "function: fn\nfunctionSelector: {matchLabels: {app: photos}}\npath: /h"),
			field: "spec.functionSelector", at: "functionSelector", want: "not both"},
		{name: "no function named", manifest: httpDoc("h", "path: /h"),
			field: "spec.function", at: "spec:", want: "missing; set spec.function to a function's name, or spec.functionSelector"},
		{name: "dangling function", manifest: httpDoc("h", "function: fm\npath: /h"),
			field: "spec.function", at: "function: fm", want: `no Function named "fm" (did you mean "fn"?)`},
		{name: "empty selector", manifest: obj("NATSTrigger", "n", "functionSelector: {}\ntopic: a"),
			field: "spec.functionSelector", at: "functionSelector", want: "would call every function"},
		{name: "selector invalid", manifest: obj("NATSTrigger", "n", "functionSelector:\n  matchExpressions: [{key: app, operator: Near}]\ntopic: a"),
			field: "spec.functionSelector", at: "functionSelector", want: "not a valid label selector operator"},
		{name: "selector matches nothing", manifest: obj("KafkaTrigger", "k", "functionSelector: {matchLabels: {app: video}}\ntopic: a"),
			field: "spec.functionSelector", at: "functionSelector", want: `"app=video" matches no function`},
		{name: "http selector matches many", manifest: fnDoc("g", "runtime: python\nsource: fn\n") + "  # labels below\n" + httpDoc("h", "functionSelector: {matchLabels: {app: photos}}\npath: /h"),
			extra: nil, field: "", at: "", want: ""}, // replaced below

		// HTTP
		{name: "http path missing", manifest: httpDoc("h", "function: fn"),
			field: "spec.path", at: "spec:", want: "give the path to serve"},
		{name: "http path relative", manifest: httpDoc("h", "function: fn\npath: hello"),
			field: "spec.path", at: "path: hello", want: `must start with /; use "/hello"`},
		{name: "http path with query", manifest: httpDoc("h", "function: fn\npath: /a?b=c"),
			field: "spec.path", at: "/a?b=c", want: "holds a query or fragment"},
		{name: "http path empty segment", manifest: httpDoc("h", "function: fn\npath: /a//b"),
			field: "spec.path", at: "/a//b", want: "empty segment"},
		{name: "http path dot-dot", manifest: httpDoc("h", "function: fn\npath: /a/../b"),
			field: "spec.path", at: "/a/../b", want: "has a . or .. segment"},
		{name: "http path bad characters", manifest: httpDoc("h", "function: fn\npath: \"/a b\""),
			field: "spec.path", at: "/a b", want: "cannot hold unescaped"},
		{name: "http path reserved", manifest: httpDoc("h", "function: fn\npath: /_ferry/x"),
			field: "spec.path", at: "/_ferry/x", want: "kept for ferry's own endpoints"},
		{name: "http method unknown", manifest: httpDoc("h", "function: fn\npath: /h\nmethods: [GET, FETCH]"),
			field: "spec.methods", at: "methods", want: `"FETCH" is not an HTTP method`},
		{name: "http duplicate path", manifest: httpDoc("h", "function: fn\npath: /h") + httpDoc("h2", "function: fn\npath: /h/\nmethods: [get]"),
			field: "spec.path", at: "path: /h/", want: `GET /h is already routed by HTTPTrigger "h"`},

		// cron
		{name: "cron schedule invalid", manifest: obj("CronTrigger", "c", "function: fn\nschedule: \"0 25 * * *\""),
			field: "spec.schedule", at: "0 25", want: "is not a cron schedule"},
		{name: "cron schedule missing", manifest: obj("CronTrigger", "c", "function: fn"),
			field: "spec.schedule", at: "spec:", want: "give a schedule"},
		{name: "cron time zone in schedule", manifest: obj("CronTrigger", "c", "function: fn\nschedule: \"CRON_TZ=UTC 0 3 * * *\""),
			field: "spec.schedule", at: "CRON_TZ", want: "move it to spec.timeZone"},
		{name: "cron time zone unknown", manifest: obj("CronTrigger", "c", "function: fn\nschedule: \"@daily\"\ntimeZone: Mars/Olympus"),
			field: "spec.timeZone", at: "Mars/Olympus", want: "is not a time zone"},

		// message triggers
		{name: "topic missing", manifest: obj("NATSTrigger", "n", "function: fn"),
			field: "spec.topic", at: "spec:", want: "give the topic"},
		{name: "nats subject invalid", manifest: obj("NATSTrigger", "n", "function: fn\ntopic: \"a.>.b\""),
			field: "spec.topic", at: "a.>.b", want: "is not a NATS subject"},
		{name: "kafka topic invalid", manifest: obj("KafkaTrigger", "k", "function: fn\ntopic: \"a/b\""),
			field: "spec.topic", at: "a/b", want: "is not a Kafka topic"},
		{name: "group invalid", manifest: obj("KafkaTrigger", "k", "function: fn\ntopic: t\ngroup: \"my group\""),
			field: "spec.group", at: "my group", want: "is not a valid group name"},
		{name: "retry attempts", manifest: obj("NATSTrigger", "n", "function: fn\ntopic: t\nretry: {attempts: 0}"),
			field: "spec.retry.attempts", at: "retry", want: "use 1 to 100"},
		{name: "retry max below backoff", manifest: obj("KafkaTrigger", "k", "function: fn\ntopic: t\nretry:\n  backoff: 10s\n  maxBackoff: 1s"),
			field: "spec.retry.maxBackoff", at: "maxBackoff", want: "less than backoff 10s"},
		{name: "kafka initial offset", manifest: obj("KafkaTrigger", "k", "function: fn\ntopic: t\ninitialOffset: newest"),
			field: "spec.initialOffset", at: "newest", want: "is not latest or earliest"},

		// pipeline
		{name: "second pipeline", manifest: pipelineDoc("stages: [{name: dev}]") + pipelineDoc("stages: [{name: qa}]"),
			field: "", at: "apiVersion", want: "a repository has one Pipeline"},
		{name: "no stages", manifest: pipelineDoc("stages: []"),
			field: "spec.stages", at: "stages: []", want: "list at least one stage"},
		{name: "stage name invalid", manifest: pipelineDoc("stages:\n- name: Dev"),
			field: "spec.stages[0].name", at: "name: Dev", want: `not a valid environment name`},
		{name: "stage name reserved", manifest: pipelineDoc("stages:\n- name: pr-7"),
			field: "spec.stages[0].name", at: "pr-7", want: "pull-request previews are pr-<n>"},
		{name: "stage name of a source's preview", manifest: pipelineDoc("stages:\n- name: pr-7-shop"),
			field: "spec.stages[0].name", at: "pr-7-shop", want: "pr-<n>-<source>"},
		{name: "stage listed twice", manifest: pipelineDoc("stages:\n- name: dev\n- name: dev"),
			field: "spec.stages[1].name", at: "name: dev", want: `stage "dev" is listed twice`},
		{name: "first stage has from", manifest: pipelineDoc("stages:\n- name: dev\n  from: [qa]\n- name: qa"),
			field: "spec.stages[0].from", at: "from: [qa]", want: "the first stage receives every new release"},
		{name: "from unknown stage", manifest: pipelineDoc("stages:\n- name: dev\n- name: staging\n- name: prod\n  from: [stagin]"),
			field: "spec.stages[2].from", at: "stagin", want: `no stage named "stagin"; did you mean "staging"?`},
		{name: "from itself", manifest: pipelineDoc("stages:\n- name: dev\n- name: qa\n  from: [qa]"),
			field: "spec.stages[1].from", at: "from: [qa]", want: "comes from itself"},
		{name: "stages in a loop", manifest: pipelineDoc("stages:\n- name: dev\n- name: a\n  from: [b]\n- name: b\n  from: [a]"),
			field: "spec.stages[2].from", at: "from: [a]", want: "loop (a <- b <- a)"},
		{name: "auto and approval", manifest: pipelineDoc("stages:\n- name: dev\n- name: prod\n  auto: true\n  approval: {required: 1}"),
			field: "spec.stages[1].auto", at: "auto: true", want: "not both"},
		{name: "approval required zero", manifest: pipelineDoc("stages:\n- name: dev\n- name: prod\n  approval: {required: 0}"),
			field: "spec.stages[1].approval.required", at: "approval", want: "means none"},
		{name: "approval cannot pass", manifest: pipelineDoc("stages:\n- name: dev\n- name: prod\n  approval:\n    required: 3\n    approvers: [alice, group:sre]"),
			field: "spec.stages[1].approval.required", at: "required: 3", want: "could never pass"},
		{name: "approver invalid", manifest: pipelineDoc("stages:\n- name: dev\n- name: prod\n  approval:\n    approvers: [\"group:\"]"),
			field: "spec.stages[1].approval.approvers[0]", at: "approvers", want: "is not a user name or group:<name>"},
		{name: "approval expiry", manifest: pipelineDoc("stages:\n- name: dev\n- name: prod\n  approval:\n    expireAfter: 0s"),
			field: "spec.stages[1].approval.expireAfter", at: "expireAfter", want: "is not positive"},
		{name: "soak too long", manifest: pipelineDoc("stages:\n- name: dev\n  soak: 48h"),
			field: "spec.stages[0].soak", at: "soak: 48h", want: "use 0 to 24h0m0s"},
		{name: "check empty", manifest: pipelineDoc("stages:\n- name: dev\n  verify:\n  - name: x"),
			field: "spec.stages[0].verify[0]", at: "name: x", want: "says nothing to check"},
		{name: "check http and event", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h}\n    event: {function: fn}"),
			field: "spec.stages[0].verify[0]", at: "http:", want: "http or event, not both"},
		{name: "check path not routed", manifest: httpDoc("h", "function: fn\npath: /h\nmethods: [POST]") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h}"),
			field: "spec.stages[0].verify[0].http.path", at: "path: /h}", want: "no HTTPTrigger serves GET /h"},
		{name: "check method", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h, method: TAKE}"),
			field: "spec.stages[0].verify[0].http.method", at: "TAKE", want: `"TAKE" is not an HTTP method`},
		{name: "check status", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h, expectStatus: 700}"),
			field: "spec.stages[0].verify[0].http.expectStatus", at: "700", want: "is not an HTTP status"},
		{name: "check jsonPath without equals", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h, jsonPath: $.ok}"),
			field: "spec.stages[0].verify[0].http.equals", at: "jsonPath", want: "jsonPath needs the value"},
		{name: "check equals without jsonPath", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h, equals: true}"),
			field: "spec.stages[0].verify[0].http.jsonPath", at: "equals", want: "equals needs a jsonPath"},
		{name: "check jsonPath syntax", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h, jsonPath: \"ok\", equals: 1}"),
			field: "spec.stages[0].verify[0].http.jsonPath", at: "jsonPath", want: "is not a path ferry evaluates"},
		{name: "check latency", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http: {path: /h, maxLatency: 5m}"),
			field: "spec.stages[0].verify[0].http.maxLatency", at: "maxLatency", want: "longer than the limit 1m0s"},
		{name: "check header", manifest: httpDoc("h", "function: fn\npath: /h") + pipelineDoc("stages:\n- name: dev\n  verify:\n  - http:\n      path: /h\n      headers: {\"Bad Header\": x}"),
			field: "spec.stages[0].verify[0].http.headers.Bad Header", at: "Bad Header", want: "is not an HTTP header name"},
		{name: "check event function", manifest: pipelineDoc("stages:\n- name: dev\n  verify:\n  - event: {function: nope}"),
			field: "spec.stages[0].verify[0].event.function", at: "nope", want: `no Function named "nope"`},
		{name: "check names repeat", manifest: pipelineDoc("stages:\n- name: dev\n  verify:\n  - event: {function: fn}\n  - event: {function: fn}"),
			field: "spec.stages[0].verify[1]", at: "- event", want: `check "event fn" is listed twice`},
		{name: "preview ttl", manifest: pipelineDoc("stages:\n- name: dev\npreviews: {ttl: 0s}"),
			field: "spec.previews.ttl", at: "ttl", want: "is not positive"},
	}
	for _, c := range cases {
		if c.name == "http selector matches many" {
			// Two functions labelled app: photos, and one HTTP route.
			c.manifest = "---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata:\n  name: g\n  labels: {app: photos}\nspec: {runtime: python, source: fn}\n" +
				httpDoc("h", "functionSelector: {matchLabels: {app: photos}}\npath: /h")
			c.field, c.at, c.want = "spec.functionSelector", "functionSelector", "matches 2 functions (fn, g), but an HTTP request is answered by one"
		}
		t.Run(c.name, func(t *testing.T) {
			manifest := pyFunction + c.manifest
			_, errs := loadFS(t, repo(manifest, c.extra))
			if len(errs) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%v", len(errs), ErrorList(errs))
			}
			e := errs[0]
			if e.Field != c.field {
				t.Errorf("field = %q, want %q (%s)", e.Field, c.field, e)
			}
			if !strings.Contains(e.Message, c.want) {
				t.Errorf("message %q does not say %q", e.Message, c.want)
			}
			lines := strings.Split(manifest, "\n")
			if e.File != ManifestFile || e.Line > len(lines) {
				t.Fatalf("position %s is not in %s", e.Pos, ManifestFile)
			}
			if line := lines[e.Line-1]; !strings.Contains(line, c.at) {
				t.Errorf("error at line %d %q, want the line with %q (%s)", e.Line, line, c.at, e)
			}
		})
	}
}

// TestValidManifests are declarations every rule must accept.
func TestValidManifests(t *testing.T) {
	cases := map[string]string{
		"every kind, as in DESIGN.md": pyFunction + fnDoc("report", "runtime: nodejs\nsource: node\nenv: {SIZE: \"128\"}\ntimeout: 10s\nmemory: 128Mi\nscale: {min: 0, max: 10}\ntest: {command: [node, --test]}") +
			httpDoc("thumbnail", "function: fn\npath: /thumbnail\nmethods: [POST]") +
			obj("KafkaTrigger", "slack", "functionSelector: {matchLabels: {app: photos}}\ntopic: slack") +
			obj("NATSTrigger", "events", "functionSelector:\n  matchExpressions: [{key: app, operator: In, values: [photos]}]\ntopic: \"photos.*.created\"\ngroup: photos") +
			obj("CronTrigger", "nightly", "function: report\nschedule: \"0 3 * * *\"\ndata: {full: true}") +
			pipelineDoc("stages:\n- {name: dev, auto: true}\n- {name: staging, auto: true, verify: [{http: {path: /thumbnail, method: POST, expectStatus: 200}}]}\n- {name: prod, approval: {required: 2, selfApproval: false}}\npreviews: {enabled: true, ttl: 72h}"),
		"same path, disjoint methods": pyFunction + fnDoc("g", "runtime: python\nsource: fn") +
			httpDoc("read", "function: fn\npath: /items\nmethods: [GET]") + httpDoc("write", "function: g\npath: /items/\nmethods: [POST, PUT]"),
		"go, python package and nodejs subfolder handlers": pyFunction +
			fnDoc("g", "runtime: go\nsource: gofn") +
			fnDoc("p", "runtime: python\nsource: pypkg\nhandler: app.handle") +
			fnDoc("n", "runtime: nodejs\nsource: .\nhandler: node/index.handler"),
		"symlinks that stay inside": pyFunction + fnDoc("l", "runtime: python\nsource: linked"),
		"fan-in stages":             pyFunction + pipelineDoc("stages:\n- name: dev\n- name: eu\n- name: us\n  from: [dev]\n- name: prod\n  from: [eu, us]\n  approval: {approvers: [alice, group:sre], required: 2, expireAfter: 24h}"),
		"anchors and merge keys": pyFunction +
			"---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: m}\nspec: &spec\n  runtime: python\n  source: fn\n---\napiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: m2}\nspec:\n  <<: *spec\n  timeout: 5s\n",
		"cron descriptors and time zones": pyFunction + obj("CronTrigger", "a", "function: fn\nschedule: \"@every 5m\"") +
			obj("CronTrigger", "b", "function: fn\nschedule: \"@daily\"\ntimeZone: Europe/Berlin\ndata: [1, \"two\", null]"),
	}
	extra := map[string]string{"linked": "->real", "real/main.py": "def handle(e, c): pass\n", "real/shared": "->../fn"}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			mustLoad(t, m, extra)
		})
	}
}

// TestAllErrorsTogether checks that one load reports every problem of
// every file, decoding and validation alike, sorted by position.
func TestAllErrorsTogether(t *testing.T) {
	manifest := pyFunction +
		fnDoc("Bad_Name", "runtime: ruby\ntimeout: soon\nsource: fn") +
		httpDoc("h", "function: missing\npath: nope\nmetods: [GET]")
	extra := map[string]string{
		".ferry/more.yaml": obj("CronTrigger", "c", "function: fn\nschedule: often\nunknown: 1"),
	}
	_, errs := loadFS(t, repo(manifest, extra))
	want := []string{
		".ferry/more.yaml:8:13: spec.schedule:",
		".ferry/more.yaml:9:3: spec.unknown: unknown field",
		"ferry.yaml:13:9: metadata.name:",
		"ferry.yaml:15:12: spec.runtime:",
		"ferry.yaml:16:12: spec.timeout:",
		"ferry.yaml:24:13: spec.function:",
		"ferry.yaml:25:9: spec.path:",
		"ferry.yaml:26:3: spec.metods: unknown field; did you mean \"methods\"?",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), ErrorList(errs))
	}
	for i, e := range errs {
		if !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("error %d = %q, want it to start with %q", i, e, want[i])
		}
	}
}
