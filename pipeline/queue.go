package pipeline

// Queued is what an executor that can tell its queue reports: the runs
// waiting to start, by source (the runs being executed are not counted).
// The embedded executor implements it; ferry serve's metrics read it.
type Queued interface {
	Queued() map[string]int
}

var _ Queued = (*embedded)(nil)

// Queued implements Queued.
func (e *embedded) Queued() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, l := range e.lanes {
		out[k.source] += len(l.queue)
	}
	return out
}
