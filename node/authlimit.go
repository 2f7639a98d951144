package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/auth"
)

// A password check is a bcrypt comparison at cost 12, ~230 ms of one core on the machine
// the figures in docs/SECURITY.md come from, and anyone who can open a connection can ask
// for one. authGuard bounds that CPU: a few checks at a time, and a failure budget per
// source address.

var (
	// errAuthLimited is wrapped by every refusal of the guard: no credential check ran.
	errAuthLimited = errors.New("authentication limit")
	// errAuthBusy: no check slot became free within Limits.AuthWait.
	errAuthBusy = fmt.Errorf("%w: every credential check slot is busy", errAuthLimited)
	// errAuthThrottled: the address used up its failure budget for the current window.
	errAuthThrottled = fmt.Errorf("%w: too many failed authentications from this address", errAuthLimited)
)

const (
	// authFailureWindow is how long an address's failures count against it, from the first.
	authFailureWindow = time.Minute
	// maxFailureAddrs bounds the failure table. A failure costs a check, so the table grows
	// by at most a window's worth of checks from distinct addresses; beyond the cap (after a
	// sweep) new addresses are not tracked, and only the concurrency bound holds for them.
	maxFailureAddrs = 100_000
)

// authGuard runs credential checks at most `slots` at a time and refuses, without
// running them, those from an address that failed `budget` times within the current
// window. A freed slot goes to the waiting check whose address has failed least in its
// window (the longest waiting among equals), so a flood of wrong passwords queues behind
// clients that have not failed. Safe for concurrent use.
type authGuard struct {
	slots  int
	budget int     // failures per address and window; 0: no budget
	exempt addrSet // addresses without a budget
	now    func() time.Time
	checks atomic.Int64 // credential checks run

	mu      sync.Mutex
	busy    int       // slots in use
	waiters []*waiter // oldest first
	addrs   map[string]*failures
	swept   time.Time
}

// waiter is a check waiting for a slot; ready closes when it is given one.
type waiter struct {
	ip      string
	ready   chan struct{}
	granted bool
}

// failures are one address's failed checks in the window that began at start.
type failures struct {
	start time.Time
	n     int
}

func newAuthGuard(concurrency, budget int, exempt addrSet) *authGuard {
	return &authGuard{slots: concurrency, budget: budget, exempt: exempt, now: time.Now, addrs: map[string]*failures{}}
}

// check runs fn, the credential check of a CONNECT from address ip, when a slot is free:
// it waits for one until ctx is done (then errAuthBusy). It returns errAuthThrottled without
// waiting or running fn when ip has used up its budget, and fn's error otherwise; an error
// from fn counts as a failure against ip.
func (g *authGuard) check(ctx context.Context, ip string, fn func() error) error {
	budgeted := !g.exempt.contains(ip)
	if budgeted && g.throttled(ip) {
		return errAuthThrottled
	}
	if !g.acquire(ctx, ip) {
		return errAuthBusy
	}
	defer g.release()
	// Failures may have come in while this one waited: the budget holds to within the
	// number of slots.
	if budgeted && g.throttled(ip) {
		return errAuthThrottled
	}
	g.checks.Add(1)
	err := fn()
	if err != nil && budgeted {
		g.fail(ip)
	}
	return err
}

func (g *authGuard) acquire(ctx context.Context, ip string) bool {
	g.mu.Lock()
	if g.busy < g.slots {
		g.busy++
		g.mu.Unlock()
		return true
	}
	w := &waiter{ip: ip, ready: make(chan struct{})}
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return true
	case <-ctx.Done():
	}
	g.mu.Lock()
	if w.granted {
		// Given a slot just as the wait ended: pass it on.
		g.mu.Unlock()
		g.release()
		return false
	}
	for i, x := range g.waiters {
		if x == w {
			g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
			break
		}
	}
	g.mu.Unlock()
	return false
}

// release gives the slot to the waiter whose address has failed least, or frees it.
func (g *authGuard) release() {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiters) == 0 {
		g.busy--
		return
	}
	best, bestN := 0, g.failuresLocked(g.waiters[0].ip, now)
	for i := 1; i < len(g.waiters) && bestN > 0; i++ {
		if n := g.failuresLocked(g.waiters[i].ip, now); n < bestN {
			best, bestN = i, n
		}
	}
	w := g.waiters[best]
	g.waiters = append(g.waiters[:best], g.waiters[best+1:]...)
	w.granted = true
	close(w.ready)
}

// failuresLocked is ip's failures in its current window.
func (g *authGuard) failuresLocked(ip string, now time.Time) int {
	if f := g.addrs[ip]; f != nil && now.Sub(f.start) < authFailureWindow {
		return f.n
	}
	return 0
}

func (g *authGuard) throttled(ip string) bool {
	if g.budget <= 0 {
		return false
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failuresLocked(ip, now) >= g.budget
}

// fail counts a failure against ip. Without a budget failures are still counted (for
// the hand-off order) but the table is kept small: it is swept every window.
func (g *authGuard) fail(ip string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.swept) >= authFailureWindow || len(g.addrs) >= maxFailureAddrs {
		for k, f := range g.addrs {
			if now.Sub(f.start) >= authFailureWindow {
				delete(g.addrs, k)
			}
		}
		g.swept = now
	}
	f := g.addrs[ip]
	switch {
	case f != nil && now.Sub(f.start) < authFailureWindow:
		f.n++
	case f != nil:
		f.start, f.n = now, 1
	case len(g.addrs) < maxFailureAddrs:
		g.addrs[ip] = &failures{start: now, n: 1}
	}
}

// tracked is how many addresses the failure table holds.
func (g *authGuard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.addrs)
}

// authenticate checks the credentials of cl's CONNECT pk (n.cfg.Auth.Authenticate) within
// the node's bounds on credential checks, and on success gives the connection's pending
// slot back. A CONNECT without username and password (anonymous) costs nothing and is
// checked at once. OnConnect calls it in place of n.cfg.Auth.Authenticate, and answers an
// error wrapping errAuthLimited with refuseAuthLimit, any other with refuseAuth.
func (n *Node) authenticate(cl *mqtt.Client, pk packets.Packet) (*auth.Identity, error) {
	user, pass := string(cl.Properties.Username), pk.Connect.Password
	var ident *auth.Identity
	var err error
	if user == "" && len(pass) == 0 {
		ident, err = n.cfg.Auth.Authenticate(user, pass, cl.ID)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Limits.AuthWait)
		err = n.mqttLis.auth.check(ctx, remoteIP(cl), func() error {
			var err error
			ident, err = n.cfg.Auth.Authenticate(user, pass, cl.ID)
			return err
		})
		cancel()
	}
	if err != nil {
		return nil, err
	}
	markAuthenticated(cl.Net.Conn)
	return ident, nil
}

// remoteIP is the source address of cl's connection.
func remoteIP(cl *mqtt.Client) string {
	if cl.Net.Conn != nil {
		return addrIP(cl.Net.Conn.RemoteAddr())
	}
	if host, _, err := net.SplitHostPort(cl.Net.Remote); err == nil {
		return host
	}
	return cl.Net.Remote
}

// refuseAuthLimit answers CONNACK for a CONNECT the guard refused without checking its
// credentials, and counts it (switchboard_node_limit_refusals_total): busy (auth_busy) gets
// 0x89 server busy, a spent failure budget (auth_failures) 0x9F connection rate exceeded;
// MQTT 3.1.1 gets 0x03 server unavailable for both, a code clients retry later.
func (n *Node) refuseAuthLimit(cl *mqtt.Client, err error) error {
	code, limit := packets.ErrServerBusy, "auth_busy"
	if errors.Is(err, errAuthThrottled) {
		code, limit = packets.ErrConnectionRateExceeded, "auth_failures"
	}
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.ErrServerUnavailable // mochi sends 3.1.1's 0x03 for it
	}
	n.metrics.limits.WithLabelValues(limit).Inc()
	n.throttled.log(n.log, slog.LevelWarn, "authentication not attempted", "client", cl.ID,
		"user", string(cl.Properties.Username), "remote", cl.Net.Remote, "reason", err)
	_ = n.mqtt.SendConnack(cl, code, false, nil)
	return errRefused
}
