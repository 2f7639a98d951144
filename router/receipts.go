package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/store"
)

// Receipts: every message sent with receipt on (the default) ends in one terminal receipt
// (store.Receipts). The router records those of messages that never reached a node
// (expired before it could queue them, refused by a full mailbox or store, rejected by the
// client's node) before it answers; the nodes record those they settle; the sweeper (every
// router runs one) expires the rest once their expiry is --receipt-grace past. The log is
// read by the webhook (webhook.go; one router at a time) and by GET /v1/events (events.go).

// ReceiptsConfig configures delivery receipts. DefaultReceiptsConfig shows every default.
type ReceiptsConfig struct {
	// Enabled turns receipts on; off, or with a store that keeps none, a request's
	// receipt is ignored.
	Enabled bool
	// Grace is how long after its expiry a message still pending is declared expired by
	// the sweeper: its node may have written it just before the expiry, and its
	// acknowledgement may come a little later.
	Grace time.Duration
	// Retention is how long terminal states and log entries are kept (0 keeps them).
	Retention time.Duration
	// SweepEvery is how often the sweeper runs.
	SweepEvery time.Duration
	// MaxStreams caps the GET /v1/events streams open at once on this router; more are
	// refused with 503.
	MaxStreams int
	// KeepAlive is how often an idle event stream gets a comment line, so that proxies
	// and clients see it alive.
	KeepAlive time.Duration
	// Webhook, if its URL is set, posts every receipt to it (see webhook.go).
	Webhook WebhookConfig
}

// DefaultReceiptsConfig returns the defaults.
func DefaultReceiptsConfig() ReceiptsConfig {
	return ReceiptsConfig{
		Enabled:    true,
		Grace:      time.Minute,
		Retention:  24 * time.Hour,
		SweepEvery: time.Second,
		MaxStreams: 100,
		KeepAlive:  15 * time.Second,
		Webhook:    DefaultWebhookConfig(),
	}
}

func (c ReceiptsConfig) validate() error {
	switch {
	case c.Grace < 0:
		return fmt.Errorf("Receipts.Grace %v: must not be negative", c.Grace)
	case c.Retention < 0:
		return fmt.Errorf("Receipts.Retention %v: must not be negative", c.Retention)
	case c.SweepEvery <= 0:
		return fmt.Errorf("Receipts.SweepEvery %v: must be positive", c.SweepEvery)
	case c.MaxStreams <= 0:
		return fmt.Errorf("Receipts.MaxStreams %d: must be positive", c.MaxStreams)
	case c.KeepAlive <= 0:
		return fmt.Errorf("Receipts.KeepAlive %v: must be positive", c.KeepAlive)
	}
	return c.Webhook.validate()
}

// newHolder names this router in consumer leases: random, so a restarted router is a
// new holder and waits for its predecessor's lease like any other.
func newHolder() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "router-" + hex.EncodeToString(b[:])
}

// startReceipts starts the sweeper and, if one is configured, the webhook dispatcher.
// They stop with ctx; the router's wait group waits for them.
func (r *Router) startReceipts(ctx context.Context) {
	if r.receipts == nil {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.runSweeper(ctx)
	}()
	if r.cfg.Receipts.Webhook.URL != "" {
		wh := newWebhook(r.cfg.Receipts.Webhook, r.receipts, r.holder, r.cfg.StoreTimeout, r.metrics, r.log)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			wh.run(ctx)
		}()
	}
}

// finishRouted records the receipts the router owes for one Route: those of messages with
// Receipt set that never reached a node, in request order (so per client in the order they
// ended). A failure is logged and counted; the answers stand (the sweeper ends a
// registered message the router could not finish as expired, later).
func (r *Router) finishRouted(ctx context.Context, sms []store.Message, out []Routed) {
	if r.receipts == nil {
		return
	}
	var rs []store.Receipt
	var accepted []int // messages answered 2xx whose receipt is in rs
	for i, m := range sms {
		if !m.Receipt {
			continue
		}
		rc := store.Receipt{Client: m.To, ID: m.ID}
		switch err := out[i].Err; {
		case err == nil && out[i].Status == Expired && out[i].Node == "":
			rc.Status, rc.Detail = store.ReceiptExpired, "expired at the router before it could be queued"
			accepted = append(accepted, i)
		case errors.Is(err, store.ErrMailboxFull), errors.Is(err, store.ErrStoreFull), errors.Is(err, ErrRejected),
			errors.Is(err, store.ErrTooManyCollapseKeys):
			rc.Status, rc.Detail = store.ReceiptRejected, clip(err.Error(), store.MaxReceiptDetail)
		default:
			continue // a node's, or the sweeper's, or not accepted at all (503: the sender retries)
		}
		rs = append(rs, rc)
	}
	if len(rs) == 0 {
		return
	}
	// The sender may be gone; the receipt is owed all the same.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.StoreTimeout)
	defer cancel()
	if err := r.receipts.Finish(fctx, rs...); err != nil {
		r.metrics.receiptErrors.WithLabelValues("finish").Inc()
		r.log.Error("record receipts", "receipts", len(rs), "first", rs[0].Client+"/"+rs[0].ID, "error", err)
		// An answer of 200 promises a receipt: without it, those are not accepted (the
		// sender retries with the same id). A refusal stays a refusal.
		for _, i := range accepted {
			out[i].Result, out[i].Err = Result{}, fmt.Errorf("record the receipt of %s: %w: %w", sms[i].ID, store.ErrUnavailable, err)
		}
	}
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// runSweeper expires, every SweepEvery, the pending messages whose expiry is Grace past
// (and forgets what the retention allows), until ctx ends. Every router runs one: sweeps
// are safe concurrently.
func (r *Router) runSweeper(ctx context.Context) {
	failures := repeating{what: "sweep receipts"}
	every(ctx, r.cfg.Receipts.SweepEvery, func() {
		switch err := r.sweep(ctx); {
		case err != nil && ctx.Err() == nil:
			r.metrics.receiptErrors.WithLabelValues("sweep").Inc()
			failures.fail(r.log, err)
		case err == nil:
			failures.ok(r.log)
		}
	})
}

// every calls fn every d until ctx ends (the first time after d).
func every(ctx context.Context, d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fn()
	}
}

// sweepMax is the most messages one SweepReceipts call expires.
const sweepMax = 1000

// sweep runs SweepReceipts until it expires fewer than it may (bounded, so a huge
// backlog does not keep the loop from its ctx).
func (r *Router) sweep(ctx context.Context) error {
	o := store.SweepOptions{Grace: r.cfg.Receipts.Grace, Max: sweepMax, Retention: r.cfg.Receipts.Retention}
	// The log is trimmed no further than the webhook has read: an outage of the receiver
	// loses nothing to the retention. Whatever this router's own configuration: another
	// router may post to a webhook this one does not know of.
	cctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
	c, err := r.receipts.Consumer(cctx, webhookConsumer)
	cancel()
	if err != nil {
		return fmt.Errorf("read the webhook's cursor: %w", err)
	}
	o.Keep = c.Cursor
	// A webhook that has read nothing yet starts at the oldest kept.
	o.KeepLog = c.Cursor == "" && r.cfg.Receipts.Webhook.URL != ""
	for range 100 {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.StoreTimeout)
		n, err := r.receipts.SweepReceipts(cctx, o)
		cancel()
		if err != nil {
			return err
		}
		r.metrics.swept.Add(float64(n))
		if n < o.Max {
			return nil
		}
	}
	return nil
}

// ReceiptEvent is one receipt as the API shows it: an event of GET /v1/events, an item of
// a webhook's body.
type ReceiptEvent struct {
	Cursor   string              `json:"cursor,omitempty"`
	ID       string              `json:"id"`
	To       string              `json:"to"`
	Status   store.ReceiptStatus `json:"status"`
	Node     string              `json:"node,omitempty"`
	Attempts int                 `json:"attempts,omitempty"`
	Detail   string              `json:"detail,omitempty"`
	At       time.Time           `json:"at,omitzero"`
}

func eventOf(rc store.Receipt) ReceiptEvent {
	return ReceiptEvent{Cursor: rc.Cursor, ID: rc.ID, To: rc.Client, Status: rc.Status, Node: rc.Node,
		Attempts: rc.Attempts, Detail: rc.Detail, At: rc.At}
}

// MessageView is the answer of GET /v1/messages/{id}: pending (with the time it has
// left) or its terminal receipt.
type MessageView struct {
	ID    string `json:"id"`
	To    string `json:"to"`
	State string `json:"state"` // "pending", or a receipt status
	// ExpiresIn is the time a pending message has left, in seconds.
	ExpiresIn *float64  `json:"expires_in,omitempty"`
	Node      string    `json:"node,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	At        time.Time `json:"at,omitzero"`
	Cursor    string    `json:"cursor,omitempty"`
}

// receiptsOr501 is the router's receipts, or a 501 answered.
func (r *Router) receiptsOr501(w http.ResponseWriter) (store.Receipts, bool) {
	if r.receipts == nil {
		writeJSON(w, http.StatusNotImplemented, ErrorBody{Error: "receipts are off: turned off (--receipts=false) or the store keeps none"})
		return nil, false
	}
	return r.receipts, true
}

func (r *Router) handleMessage(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if err := validMessageID(id); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	to := req.URL.Query().Get("to")
	if to == "" {
		r.badRequest(w, fieldError{"to", "is required: message ids are the sender's, unique per recipient"}, nil)
		return
	}
	if err := inbox.ValidateClientID(to); err != nil {
		r.badRequest(w, fieldError{"to", err.Error()}, nil)
		return
	}
	if !r.scopeAllows(w, req, "to", to) {
		return
	}
	rs, ok := r.receiptsOr501(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	st, err := rs.MessageState(ctx, to, id)
	switch {
	case errors.Is(err, store.ErrNoMessage):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("message %q for %q: %v (never sent with a receipt, or forgotten after the retention)", id, to, store.ErrNoMessage)})
		return
	case err != nil:
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "read message state: " + msg})
		return
	}
	v := MessageView{ID: id, To: to}
	if st.Pending {
		secs := st.TTL.Seconds()
		v.State, v.ExpiresIn = "pending", &secs
	} else {
		rc := st.Receipt
		v.State, v.Node, v.Attempts, v.Detail, v.At, v.Cursor = string(rc.Status), rc.Node, rc.Attempts, rc.Detail, rc.At, rc.Cursor
	}
	writeJSON(w, http.StatusOK, v)
}

// validMessageID checks an id as a request's id is checked.
func validMessageID(id string) error {
	if id == "" || len(id) > maxIDLen || strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 {
		return fieldError{"id", fmt.Sprintf("%q: use 1-%d of [A-Za-z0-9._-]", id, maxIDLen)}
	}
	return nil
}

// loopbackHost reports whether a URL's host is this machine (where plain HTTP is allowed).
func loopbackHost(u *url.URL) bool {
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
