package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/healthz"
)

// drainPoll is how often `quarantine --wait` and `release --wait` look again.
const drainPoll = 200 * time.Millisecond

// waitDrained waits, up to d, until a quarantined node has left the live set and moved its
// clients off (read from its /healthz while it answers), with a progress line on a
// terminal. admin is the node's admin address ("" when it was not in the live set).
func waitDrained(ctx context.Context, e env, c coord.Coordinator, id, admin string, d time.Duration) error {
	prog := startProgress(e, false)
	defer prog.Stop()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var left time.Duration // when it left the live set
	clients := -1          // unknown until its /healthz answers
	for {
		live, err := inLiveSet(ctx, c, id)
		switch {
		case err != nil && ctx.Err() == nil:
			return err
		case err != nil:
			// The wait ran out before the live set answered: nothing is known, and an
			// unknown is not "out of service" (it used to be taken for one).
			return fmt.Errorf("%s: the live set did not answer within %v (the mark stands): %w", id, d, err)
		}
		if n, ok := healthClients(ctx, admin); ok {
			clients = n
		} else if !live && ctx.Err() == nil {
			clients = 0 // gone, or its admin port does not answer from here: nothing to count
		}
		switch {
		case live && clients >= 0:
			prog.Set("%s: quarantined, out of the load balancer; leaves the live set after its grace; %d clients", id, clients)
		case live:
			prog.Set("%s: quarantined, out of the load balancer; leaves the live set after its grace", id)
		case left == 0:
			left = time.Since(start)
		}
		if !live && clients > 0 {
			prog.Set("%s: left the live set after %.1fs; moving its clients off: %d left", id, left.Seconds(), clients)
		}
		if !live && clients == 0 {
			prog.Stop()
			fmt.Fprintf(e.stdout, "%s is out of service: out of the live set after %.1fs, no clients after %.1fs\n",
				id, left.Seconds(), time.Since(start).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			if live {
				return fmt.Errorf("%s is still in the live set after %v (the mark stands)", id, d)
			}
			if clients < 0 {
				return fmt.Errorf("%s left the live set, but its client count was not read within %v (the mark stands)", id, d)
			}
			return fmt.Errorf("%s still has %d clients after %v (the mark stands)", id, clients, d)
		case <-time.After(drainPoll):
		}
	}
}

// waitRejoined waits, up to d, until a released node is in the live set again.
func waitRejoined(ctx context.Context, e env, c coord.Coordinator, id string, d time.Duration) error {
	prog := startProgress(e, false)
	defer prog.Stop()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	prog.Set("%s: released; waiting for it to register again", id)
	for {
		live, err := inLiveSet(ctx, c, id)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if live {
			prog.Stop()
			fmt.Fprintf(e.stdout, "%s is back in the live set after %.1fs\n", id, time.Since(start).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s has not registered again after %v (is it running?)", id, d)
		case <-time.After(drainPoll):
		}
	}
}

func inLiveSet(ctx context.Context, c coord.Membership, id string) (bool, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// healthClients reads the client count from a node's /healthz (a quarantined node answers
// 503 with the same body).
func healthClients(ctx context.Context, admin string) (int, bool) {
	if admin == "" {
		return 0, false
	}
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(hctx, http.MethodGet, "http://"+admin+"/healthz", nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var h healthz.Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h); err != nil {
		return 0, false
	}
	return h.Clients, true
}
