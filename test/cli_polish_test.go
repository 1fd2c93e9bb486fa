package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/testreg"
)

var wholeDigestRE = regexp.MustCompile(`[0-9a-f]{64}`)

// TestCLIPolish: ferry status lists environments in pipeline order within
// 100 columns (-o wide shows the rest), ferry diff says what differs
// between two environments or releases, freeze, unfreeze, approve and
// resume say what happens next, and a count of one is singular.
func TestCLIPolish(t *testing.T) {
	p, work, cli := polishServe(t, "polish", polishPipeline)
	c := p.client(t)
	waitIn(t, p, "staging", "hello from python", 120*time.Second)
	r1 := newRelease(t, p, "staging", "")
	pending := pendingProd(t, p, c, "")

	// A pending promotion counts its approvals against those required.
	r := cli(aliceToken, "promotions", "--env", "prod")
	if l := lineOf(r.stdout, fmt.Sprint(pending.ID)+" "); r.code != 0 || !strings.Contains(l, " 0/1 ") || wholeDigestRE.MatchString(r.stdout) {
		t.Errorf("ferry promotions --env prod: promotion %d's line %q\n%s%s", pending.ID, l, r.stdout, r.stderr)
	}

	// What happens next.
	r = cli(aliceToken, "freeze", "prod", "--reason", "audit")
	if r.code != 0 || !strings.Contains(r.stdout, "next: frozen: promotions wait until `ferry unfreeze prod`") {
		t.Errorf("ferry freeze prod: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("ferry freeze prod:\n%s", r.stdout)
	r = cli(aliceToken, "unfreeze", "prod")
	if want := fmt.Sprintf("next: promotion %d is waiting for 1 more approval from bob", pending.ID); r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("ferry unfreeze prod: %d\n%s%s\nwant %q", r.code, r.stdout, r.stderr, want)
	}
	t.Logf("ferry unfreeze prod:\n%s", r.stdout)
	r = cli(bobToken, "approve", fmt.Sprint(pending.ID))
	// why: either, as the promoter may finish before the answer is made.
	if r.code != 0 || !strings.Contains(r.stdout, "next: promotion") || !strings.Contains(r.stdout, " now") && !strings.Contains(r.stdout, "is live in prod") ||
		!strings.HasPrefix(r.stdout, fmt.Sprintf("promotion %d: %s into prod", pending.ID, store.Short(r1))) {
		t.Errorf("ferry approve: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("ferry approve:\n%s", r.stdout)
	waitIn(t, p, "prod", "hello from python", 60*time.Second)

	// Plurals: staging's one check.
	r = cli(aliceToken, "promotions", "--env", "staging")
	if r.code != 0 || !strings.Contains(r.stdout, "verified: 1 check passed") || strings.Contains(r.stdout, "1 checks") {
		t.Errorf("ferry promotions --env staging: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A second commit changes the greeting and the trigger's methods.
	yaml := filepath.Join(work, "ferry.yaml")
	b, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(yaml, []byte(strings.Replace(string(b), "methods: [GET, POST]", "methods: [GET, POST, PUT]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	commitGreeting(t, work, "", "hello again")
	waitIn(t, p, "staging", "hello again", 90*time.Second)
	r2 := newRelease(t, p, "staging", r1)

	// ferry status: pipeline order (not the alphabet's), 100 columns.
	r = cli(aliceToken, "status")
	if r.code != 0 {
		t.Fatalf("ferry status: %d\n%s", r.code, r.stderr)
	}
	t.Logf("ferry status:\n%s", r.stdout)
	order := []int{}
	for _, env := range []string{"dev", "staging", "prod"} {
		order = append(order, strings.Index(r.stdout, "\n"+env+" "))
	}
	if order[0] < 0 || !(order[0] < order[1] && order[1] < order[2]) {
		t.Errorf("ferry status does not list dev, staging, prod in that order:\n%s", r.stdout)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if n := utf8.RuneCountInString(l); n > 100 {
			t.Errorf("ferry status printed %d columns:\n%s", n, l)
		}
	}
	if wholeDigestRE.MatchString(r.stdout) || !strings.Contains(r.stdout, store.Short(r2)) {
		t.Errorf("ferry status should name releases and images by 12 characters:\n%s", r.stdout)
	}
	r = cli(aliceToken, "status", "-o", "wide")
	if r.code != 0 || !wholeDigestRE.MatchString(r.stdout) || !strings.Contains(r.stdout, "RESTARTS") {
		t.Errorf("ferry status -o wide shows no whole image reference:\n%s%s", r.stdout, r.stderr)
	}
	t.Logf("ferry status -o wide:\n%s", r.stdout)
	r = cli(aliceToken, "status", "prod")
	if r.code != 0 || !strings.Contains(r.stdout, "\nprod ") || strings.Contains(r.stdout, "\ndev ") || !strings.Contains(r.stdout, store.Short(r1)) {
		t.Errorf("ferry status prod:\n%s%s", r.stdout, r.stderr)
	}

	// ferry diff: prod runs r1, staging r2.
	r = cli(aliceToken, "diff", "prod", "staging")
	for _, want := range []string{
		"from prod (release " + store.Short(r1) + ") to staging (release " + store.Short(r2) + ")",
		"FUNCTION", "hello",
		"HTTPTrigger/hello", "changed",
		"--- prod " + store.Short(r1), "+++ staging " + store.Short(r2),
		"+    - PUT\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ferry diff prod staging lacks %q: %d\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}
	if r := cli(aliceToken, "diff", store.Short(r1), store.Short(r2)); r.code != 0 || !strings.Contains(r.stdout, "HTTPTrigger/hello") {
		t.Errorf("ferry diff by release prefixes: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "diff", "dev", "staging"); r.code != 0 || !strings.Contains(r.stdout, "dev and staging run the same release "+store.Short(r2)) {
		t.Errorf("ferry diff dev staging: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "diff", "prod", "nowhere"); r.code == 0 || !strings.Contains(r.stderr, `"nowhere" is neither an environment nor a release id`) {
		t.Errorf("ferry diff prod nowhere: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// resume says what happens next too; before it, status says to run it.
	if r := cli(aliceToken, "rollback", "staging"); r.code != 0 || !strings.HasPrefix(r.stdout, "staging now runs "+store.Short(r1)+" (was "+store.Short(r2)+")") {
		t.Fatalf("ferry rollback staging: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "status", "staging"); r.code != 0 || !strings.Contains(r.stdout, "staging is held: ferry resume staging lets automatic promotions in (alice pinned it") {
		t.Errorf("ferry status staging after a rollback: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "resume", "staging"); r.code != 0 || !strings.Contains(r.stdout, "next: ") {
		t.Errorf("ferry resume staging: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestStatusWatch: ferry status --watch prints the status again when it
// changes (here: a freeze), and not while it does not.
func TestStatusWatch(t *testing.T) {
	p := startServe(t, writeServeConfig(t, ""))
	cmd := exec.Command(ferryBin, "status", "--watch", "--interval", "100ms", "--server", p.api, "--token", serveToken)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errb := &testreg.SyncBuffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// waitFor reads lines until one contains want, and counts the frames
	// (each starts with "-- ") it read on the way.
	var seen strings.Builder
	waitFor := func(want string) (frames int) {
		t.Helper()
		hang := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("ferry status --watch ended before %q:\n%s%s", want, seen.String(), errb)
				}
				seen.WriteString(l + "\n")
				if strings.HasPrefix(l, "-- ") {
					frames++
				}
				if strings.Contains(l, want) {
					return frames
				}
			case <-hang:
				t.Fatalf("ferry status --watch did not show %q within 60 s:\n%s%s", want, seen.String(), errb)
			}
		}
	}
	waitFor("ENVIRONMENT")
	if r := ferry(t, "freeze", "dev", "--reason", "watching", "--server", p.api, "--token", serveToken); r.code != 0 {
		t.Fatalf("ferry freeze dev: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if frames := waitFor("dev is frozen: ferry unfreeze dev lets promotions in (watching)"); frames != 1 {
		t.Errorf("ferry status --watch printed %d frames for one change; it prints only when something changed:\n%s", frames, seen.String())
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ferry status --watch on Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("ferry status --watch did not stop on Ctrl-C")
	}
}
