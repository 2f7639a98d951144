package memcoord

import (
	"context"
	"slices"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// ballot is the candidate of election at rev, in session sess; a leadership is held while
// it stands (see coord.HoldLeadership), and SetQuarantine checks that it does.
type ballot struct {
	c         *Coordinator
	election  string
	rev, sess int64
	changed   <-chan struct{} // closed at the first write after the last Line
}

// Campaign runs coord.Campaign, the real backends' recipe, on candidates in the client's session.
func (c *Coordinator) Campaign(ctx context.Context, election, value string) (coord.Leadership, error) {
	return coord.Campaign(ctx, c.g, c.log, election, value, c.stand)
}

func (c *Coordinator) stand(_ context.Context, election, value string) (*ballot, error) {
	b := &ballot{c: c, election: election}
	c.cl.write(func() {
		// The session is read under the lock: if ExpireSession replaces it now, it ends the old
		// one after this, taking the candidate with it.
		c.cl.rev++
		b.rev, b.sess = c.cl.rev, c.sess.Load()
		c.cl.candidates[election] = append(c.cl.candidates[election], candidate{rev: b.rev, sess: b.sess, value: value})
	})
	return b, nil
}

// Line finds the candidate among those standing, in campaign order.
func (b *ballot) Line(context.Context) (ahead int, _ error) {
	b.changed = b.c.cl.read(func() {
		ahead = slices.IndexFunc(b.c.cl.candidates[b.election], b.is)
	})
	return ahead, nil
}

// Wait waits for any write: nothing here is slow, so every candidate may look again.
func (b *ballot) Wait(ctx context.Context) { b.c.wait(ctx, b.changed) }

func (b *ballot) Candidacy() coord.Candidacy {
	return coord.Candidacy{
		Name: b.election, Session: &session{c: b.c, id: b.sess}, Timeout: b.c.timeout,
		Resign: b.Withdraw, // removing the candidate elects the next one
	}
}

func (b *ballot) Withdraw(context.Context) error {
	b.c.cl.write(func() {
		b.c.cl.candidates[b.election] = slices.DeleteFunc(b.c.cl.candidates[b.election], b.is)
	})
	return nil
}

func (b *ballot) is(c candidate) bool { return c.rev == b.rev }

// Leader returns the value of the earliest candidate standing.
func (c *Coordinator) Leader(ctx context.Context, election string) (string, error) {
	return coord.Leader(ctx, election, func(_ context.Context, election string) (value string, ok bool, _ error) {
		c.cl.read(func() {
			if cs := c.cl.candidates[election]; len(cs) > 0 {
				value, ok = cs[0].value, true
			}
		})
		return value, ok, nil
	})
}
