package memcoord

import (
	"context"
	"fmt"
	"slices"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// Campaign adds a candidate in the client's session and waits until it is the earliest one
// standing: the recipe both real backends follow. A candidate lost while waiting (its
// session expired) campaigns again.
func (c *Coordinator) Campaign(ctx context.Context, election, value string) (coord.Leadership, error) {
	if err := coord.ValidateID(election); err != nil {
		return nil, fmt.Errorf("election name: %w", err)
	}
	for {
		var rev, sess int64
		c.cl.write(func() {
			// The session read under the lock: if ExpireSession replaces it now, its end of
			// the old one comes after this and takes the candidate with it.
			c.cl.rev++
			rev, sess = c.cl.rev, c.sess.Load()
			cand := candidate{rev: rev, sess: sess, value: value}
			c.cl.candidates[election] = append(c.cl.candidates[election], cand)
		})
		for {
			var first, stands bool
			changed := c.cl.read(func() {
				stands = c.cl.stands(election, rev)
				cs := c.cl.candidates[election]
				first = len(cs) > 0 && cs[0].rev == rev
			})
			if first {
				return c.lead(election, rev, sess)
			}
			if !stands {
				break // lost with its session: campaign again
			}
			if !c.wait(ctx, changed) {
				c.cl.withdraw(election, rev)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("campaign %s: %w", election, ctx.Err())
				}
				return nil, coord.ErrClosed
			}
		}
	}
}

// stands reports whether the candidate of election at rev still stands. Called under mu.
func (cl *Cluster) stands(election string, rev int64) bool {
	return slices.ContainsFunc(cl.candidates[election], func(c candidate) bool { return c.rev == rev })
}

// withdraw removes the candidate of election at rev.
func (cl *Cluster) withdraw(election string, rev int64) {
	cl.write(func() {
		cl.candidates[election] = slices.DeleteFunc(cl.candidates[election], func(c candidate) bool { return c.rev == rev })
	})
}

// Leader returns the value of the earliest candidate standing.
func (c *Coordinator) Leader(_ context.Context, election string) (string, error) {
	var (
		value string
		ok    bool
	)
	c.cl.read(func() {
		if cs := c.cl.candidates[election]; len(cs) > 0 {
			value, ok = cs[0].value, true
		}
	})
	if !ok {
		return "", fmt.Errorf("leader of %s: %w", election, coord.ErrNotFound)
	}
	return value, nil
}

// leadership is held while its candidate stands (see coord.HoldLeadership).
type leadership struct {
	*coord.Held
	c        *Coordinator
	election string
	rev      int64
}

// lead holds the leadership of the candidate of election at rev, in session sess.
func (c *Coordinator) lead(election string, rev, sess int64) (*leadership, error) {
	l := &leadership{c: c, election: election, rev: rev}
	var err error
	l.Held, err = coord.HoldLeadership(coord.Candidacy{
		Name: election, Session: &session{c: c, id: sess}, Timeout: c.timeout, Log: c.log, Closed: c.g.Closed(),
		Follow: func(ctx context.Context) string {
			for {
				var stands bool
				changed := c.cl.read(func() { stands = c.cl.stands(election, rev) })
				if !stands {
					return "candidate gone"
				}
				if !c.wait(ctx, changed) {
					return ""
				}
			}
		},
		// Removing the candidate elects the next one.
		Resign: func(context.Context) error {
			c.cl.withdraw(election, rev)
			return nil
		},
	}, c.g.Go)
	if err != nil {
		c.cl.withdraw(election, rev)
		return nil, err
	}
	return l, nil
}
