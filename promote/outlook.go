package promote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/internal/words"
	"github.com/ferrycd/ferry/store"
)

// Outlook says what happens next, in a sentence for whoever just acted:
// after an approval, "deploying now" or "waiting for 1 more approval
// from ann or bob"; after a freeze, "frozen: promotions wait until
// ferry unfreeze prod". The API adds it to the answers of promote,
// approve, reject, resume, freeze and unfreeze.
type Outlook interface {
	// Next says what happens next to promotion id or, when id is 0, to
	// what waits to go into env.
	Next(ctx context.Context, env string, id int64) (string, error)
}

var _ Outlook = (*engine)(nil)

// Next implements Outlook. It reads the state as it is; the promoter may
// move on a moment later, which is what it announces.
func (e *engine) Next(ctx context.Context, env string, id int64) (string, error) {
	g, err := e.gate(ctx, env)
	if err != nil {
		return "", err
	}
	if id != 0 {
		p, err := e.st.GetPromotion(ctx, id)
		if err != nil {
			return "", err
		}
		return e.nextFor(ctx, p, g)
	}
	active, err := e.st.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{StatusDeploying, StatusVerifying}})
	if err != nil {
		return "", err
	}
	if len(active) > 0 {
		return e.nextFor(ctx, active[0], g)
	}
	queue, err := e.st.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{StatusApproved, StatusPending}})
	if err != nil {
		return "", err
	}
	if g.frozen != "" {
		return fmt.Sprintf("%s; %s", frozenNext(env, g), waiting(len(queue))), nil
	}
	// why: an approved promotion goes before a pending one, as the
	// promoter takes them.
	slices.SortStableFunc(queue, func(a, b store.Promotion) int {
		return boolInt(a.Status != StatusApproved) - boolInt(b.Status != StatusApproved)
	})
	for _, p := range queue {
		if g.blocks(p) == "" || p.Status == StatusPending {
			return e.nextFor(ctx, p, g)
		}
	}
	if g.held != "" {
		return fmt.Sprintf("held: automatic promotions wait until `ferry resume %s`; %s", env, waiting(len(queue))), nil
	}
	return "nothing waits to go into " + env, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func waiting(n int) string {
	if n == 0 {
		return "no promotion waits"
	}
	return words.Count(n, "promotion") + " " + words.Noun(n, "waits", "wait")
}

// frozenNext is the outlook of a frozen environment: a manual freeze
// ends with unfreeze, a window on its own.
func frozenNext(env string, g gate) string {
	if strings.Contains(g.frozen, "freeze window") {
		return "frozen: promotions wait until " + strings.TrimPrefix(g.frozen, env+" is in ") + " ends"
	}
	return fmt.Sprintf("frozen: promotions wait until `ferry unfreeze %s`", env)
}

// nextFor says what happens next to p.
func (e *engine) nextFor(ctx context.Context, p store.Promotion, g gate) (string, error) {
	rel := store.Short(p.Release)
	switch p.Status {
	case StatusDeploying:
		return fmt.Sprintf("promotion %d: deploying %s into %s now", p.ID, rel, p.Environment), nil
	case StatusVerifying:
		return fmt.Sprintf("promotion %d: %s is in %s, verifying now", p.ID, rel, p.Environment), nil
	case StatusApproved:
		switch {
		case g.frozen != "":
			return fmt.Sprintf("promotion %d is approved; %s", p.ID, frozenNext(p.Environment, g)), nil
		case g.blocks(p) != "":
			return fmt.Sprintf("promotion %d is approved; held: it waits until `ferry resume %s`", p.ID, p.Environment), nil
		}
		return fmt.Sprintf("promotion %d: deploying %s into %s now", p.ID, rel, p.Environment), nil
	case StatusPending:
		s, err := e.pendingNext(ctx, p)
		if err != nil {
			return "", err
		}
		if g.frozen != "" {
			s += "; then " + frozenNext(p.Environment, g)
		}
		return s, nil
	case StatusSucceeded:
		return fmt.Sprintf("promotion %d succeeded: %s is live in %s", p.ID, rel, p.Environment), nil
	}
	why := ""
	if p.Reason != "" {
		why = " (" + p.Reason + ")"
	}
	return fmt.Sprintf("promotion %d is %s%s; nothing more happens to it", p.ID, p.Status, why), nil
}

// pendingNext says whose approvals a pending promotion waits for.
func (e *engine) pendingNext(ctx context.Context, p store.Promotion) (string, error) {
	rel, err := e.release(ctx, p.Release)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("promotion %d is waiting: %s", p.ID, p.Reason), nil
	}
	if err != nil {
		return "", err
	}
	stage, ok := rel.stage(p.Environment)
	if !ok || stage.Approval == nil {
		return fmt.Sprintf("promotion %d is waiting: %s", p.ID, p.Reason), nil
	}
	pol := stage.Approval
	names, err := e.validApprovals(ctx, p, rel, pol)
	if err != nil {
		return "", err
	}
	more := max(required(pol)-len(names), 0)
	if more == 0 {
		return fmt.Sprintf("promotion %d: deploying %s into %s now", p.ID, store.Short(p.Release), p.Environment), nil
	}
	who := words.Noun(more, "approver")
	if more == 1 {
		who = "an approver"
	}
	from := who + " other than " + p.Requester
	if pol.SelfApproval || p.Requester == Actor {
		from = who
	}
	if len(pol.Approvers) > 0 {
		// why: those who approved, asked, or wrote the commit cannot give
		// one more; the author is left in when it cannot be read.
		var self author
		if !pol.SelfApproval {
			self, _ = e.commitAuthor(ctx, rel.rec)
		}
		var left []string
		for _, a := range pol.Approvers {
			mine := !pol.SelfApproval && (strings.EqualFold(a, p.Requester) || self.name != "" && strings.EqualFold(a, self.name))
			if !slices.Contains(names, a) && !mine {
				left = append(left, a)
			}
		}
		if len(left) > 0 {
			from = words.List(left, "or")
		}
	}
	extra := ""
	if len(names) > 0 {
		extra = " (approved by " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf("promotion %d is waiting for %d more %s from %s%s", p.ID, more, words.Noun(more, "approval"), from, extra), nil
}
