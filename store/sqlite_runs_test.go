package store

import (
	"testing"
	"time"
)

var pipeline = []string{"checkout", "validate", "build", "test", "release", "deploy"}

func TestCreateRun(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	r := Run{Source: "demo", Branch: "main", Commit: "c1", Status: StatusRunning, Reason: "ignored"}
	run, created, err := s.CreateRun(ctx, r, pipeline)
	check(t, err)
	if !created || run.ID == 0 || run.Status != StatusQueued || run.Reason != "" || run.Created.IsZero() {
		t.Fatalf("CreateRun = %+v, %v: want a new queued run", run, created)
	}
	if len(run.Steps) != len(pipeline) {
		t.Fatalf("steps %+v, want %v", run.Steps, pipeline)
	}
	for i, st := range run.Steps {
		want := Step{RunID: run.ID, Name: pipeline[i], Index: i, Status: StatusQueued}
		same(t, "step", st, want)
	}
	same(t, "GetRun", must[Run](t)(s.GetRun(ctx, run.ID)), run)

	// The same commit again: the run there is, with no new steps.
	again, created, err := s.CreateRun(ctx, r, []string{"other"})
	check(t, err)
	if created {
		t.Error("a second CreateRun of a commit created a run")
	}
	same(t, "second CreateRun", again, run)

	// Another branch or commit is another run.
	other, created, err := s.CreateRun(ctx, Run{Source: "demo", Branch: "dev", Commit: "c1"}, nil)
	check(t, err)
	if !created || other.ID == run.ID {
		t.Errorf("CreateRun on another branch = %+v, %v: want a new run", other, created)
	}

	_, err = s.GetRun(ctx, 99)
	isErr(t, err, ErrNotFound, "run 99: not found")
}

func TestUpdateRunAndSteps(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	run, _, err := s.CreateRun(ctx, Run{Source: "demo", Branch: "main", Commit: "c1"}, []string{"build", "test"})
	check(t, err)
	start := now()
	run.Status, run.Started = StatusRunning, start
	check(t, s.UpdateRun(ctx, run))
	check(t, s.UpdateStep(ctx, Step{RunID: run.ID, Name: "build", Status: StatusSucceeded, Started: start, Ended: start.Add(time.Second)}))
	check(t, s.UpdateStep(ctx, Step{RunID: run.ID, Name: "test", Status: StatusFailed, Reason: "exit 1", Started: start}))
	run.Status, run.Reason, run.Release, run.Ended = StatusFailed, "test failed", "sha256:r", start.Add(2*time.Second)
	run.InfraFailed = true
	check(t, s.UpdateRun(ctx, run))

	run.Steps = []Step{
		{RunID: run.ID, Name: "build", Index: 0, Status: StatusSucceeded, Started: start, Ended: start.Add(time.Second)},
		{RunID: run.ID, Name: "test", Index: 1, Status: StatusFailed, Reason: "exit 1", Started: start},
	}
	same(t, "updated run", must[Run](t)(s.GetRun(ctx, run.ID)), run)
	run.InfraFailed = false
	check(t, s.UpdateRun(ctx, run))
	if got := must[Run](t)(s.GetRun(ctx, run.ID)); got.InfraFailed {
		t.Errorf("InfraFailed stayed set after UpdateRun cleared it")
	}

	isErr(t, s.UpdateRun(ctx, Run{ID: 99}), ErrNotFound, "run 99: not found")
	isErr(t, s.UpdateStep(ctx, Step{RunID: run.ID, Name: "deploy"}), ErrNotFound, `step "deploy" of run 1: not found`)
}

func TestListAndUnfinishedRuns(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	var runs []Run
	for i, src := range []string{"a", "b", "a", "b"} {
		r, _, err := s.CreateRun(ctx, Run{Source: src, Branch: "main", Commit: string(rune('1' + i))}, []string{"build"})
		check(t, err)
		runs = append(runs, r)
	}
	runs[0].Status = StatusSucceeded
	runs[1].Status = StatusRunning
	runs[3].Status = StatusSuperseded
	for _, r := range runs {
		check(t, s.UpdateRun(ctx, r))
	}
	// ListRuns leaves out steps.
	bare := func(rs ...Run) []Run {
		var out []Run
		for _, r := range rs {
			r.Steps = nil
			out = append(out, r)
		}
		return out
	}
	same(t, "ListRuns", must[[]Run](t)(s.ListRuns(ctx, "", Page{})), bare(runs[3], runs[2], runs[1], runs[0]))
	same(t, "ListRuns of a", must[[]Run](t)(s.ListRuns(ctx, "a", Page{})), bare(runs[2], runs[0]))
	same(t, "UnfinishedRuns", must[[]Run](t)(s.UnfinishedRuns(ctx)), []Run{runs[1], runs[2]})
}

func TestLogs(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	r1, _, err := s.CreateRun(ctx, Run{Source: "demo", Commit: "c1"}, []string{"build"})
	check(t, err)
	r2, _, err := s.CreateRun(ctx, Run{Source: "demo", Commit: "c2"}, []string{"build"})
	check(t, err)
	check(t, s.AppendLog(ctx, r1.ID, "build", "one", "two"))
	check(t, s.AppendLog(ctx, r2.ID, "build", "other run"))
	check(t, s.AppendLog(ctx, r1.ID, "test", "three"))
	check(t, s.AppendLog(ctx, r1.ID, "test")) // nothing to add

	lines := must[[]LogLine](t)(s.Logs(ctx, r1.ID, 0, 0))
	var texts []string
	for i, l := range lines {
		if l.At.IsZero() || (i > 0 && l.Seq <= lines[i-1].Seq) {
			t.Errorf("line %d: %+v, want At set and Seq increasing", i, l)
		}
		texts = append(texts, l.Step+": "+l.Text)
	}
	same(t, "lines", texts, []string{"build: one", "build: two", "test: three"})
	same(t, "after the first", must[[]LogLine](t)(s.Logs(ctx, r1.ID, lines[0].Seq, 0)), lines[1:])
	same(t, "one after the first", must[[]LogLine](t)(s.Logs(ctx, r1.ID, lines[0].Seq, 1)), lines[1:2])
	same(t, "after the last", must[[]LogLine](t)(s.Logs(ctx, r1.ID, lines[2].Seq, 0)), []LogLine{})

	isErr(t, s.AppendLog(ctx, 99, "build", "x"), ErrNotFound, "run 99: not found")
}
