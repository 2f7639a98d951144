package router

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// WebhookConfig configures the receipts webhook: one router at a time (the holder of the
// consumer "webhook"'s lease) reads the receipt log from the consumer's cursor and POSTs
// it, batch by batch, to URL. DefaultWebhookConfig shows every default.
type WebhookConfig struct {
	// URL receives the batches; "" turns the webhook off. HTTPS, unless its host is
	// loopback.
	URL string
	// Secret signs each body (X-Switchboard-Signature); required with URL.
	Secret string
	// Batch is the most receipts in one POST.
	Batch int
	// Attempts is how many times a batch is posted before it is counted as dead letters
	// and skipped.
	Attempts int
	// Timeout bounds one POST.
	Timeout time.Duration
	// Lease is how long the router that posts holds the consumer without renewing it:
	// another takes over this long after it dies.
	Lease time.Duration
	// MinBackoff is the pause after the first failed attempt; it doubles, jittered, up
	// to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// DefaultWebhookConfig returns the defaults (no URL: no webhook).
func DefaultWebhookConfig() WebhookConfig {
	return WebhookConfig{
		Batch:      100,
		Attempts:   8,
		Timeout:    5 * time.Second,
		Lease:      10 * time.Second,
		MinBackoff: 200 * time.Millisecond,
		MaxBackoff: 30 * time.Second,
	}
}

func (c WebhookConfig) validate() error {
	if c.URL == "" {
		return nil
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return fmt.Errorf("Receipts.Webhook.URL %q: %w", c.URL, err)
	case u.Host == "":
		return fmt.Errorf("Receipts.Webhook.URL %q: no host", c.URL)
	case u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u)):
		return fmt.Errorf("Receipts.Webhook.URL %q: must be https (plain http only to a loopback host)", c.URL)
	case c.Secret == "":
		return errors.New("Receipts.Webhook.Secret is required with Receipts.Webhook.URL: receivers verify the signature")
	case c.Batch <= 0 || c.Batch > store.MaxReceiptsRead:
		return fmt.Errorf("Receipts.Webhook.Batch %d: must be between 1 and %d", c.Batch, store.MaxReceiptsRead)
	case c.Attempts <= 0:
		return fmt.Errorf("Receipts.Webhook.Attempts %d: must be positive", c.Attempts)
	case c.Timeout <= 0:
		return fmt.Errorf("Receipts.Webhook.Timeout %v: must be positive", c.Timeout)
	case c.Lease < time.Second:
		return fmt.Errorf("Receipts.Webhook.Lease %v: must be at least 1s", c.Lease)
	case c.Timeout >= c.Lease:
		return fmt.Errorf("Receipts.Webhook.Timeout %v: must be shorter than the lease %v (a POST must end while its router holds the consumer)", c.Timeout, c.Lease)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("Receipts.Webhook.MinBackoff %v and MaxBackoff %v: must be positive, min at most max", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// webhookConsumer is the webhook's consumer in the store: its cursor and dead letters.
const webhookConsumer = "webhook"

// webhookWait is how long one read of the log waits for a receipt.
const webhookWait = time.Second

// Signature returns the X-Switchboard-Signature of a webhook body sent with the
// X-Switchboard-Timestamp ts: "sha256=" and the hex HMAC-SHA256, keyed with the secret,
// of ts, "." and the body. A receiver computes it and compares in constant time.
func Signature(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhook posts the receipt log to a URL. Its run is the only goroutine using it.
type webhook struct {
	cfg          WebhookConfig
	rs           store.Receipts
	holder       string
	storeTimeout time.Duration
	client       *http.Client
	metrics      *metrics
	log          *slog.Logger
}

func newWebhook(cfg WebhookConfig, rs store.Receipts, holder string, storeTimeout time.Duration, m *metrics, log *slog.Logger) *webhook {
	return &webhook{cfg: cfg, rs: rs, holder: holder, storeTimeout: storeTimeout, metrics: m,
		log: log.With("consumer", webhookConsumer),
		client: &http.Client{Timeout: cfg.Timeout,
			// A redirect is a failure: the signed body goes to the configured URL only.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// run holds the consumer when it can and posts batches until ctx ends.
func (h *webhook) run(ctx context.Context) {
	defer h.client.CloseIdleConnections()
	holding := false
	for ctx.Err() == nil {
		ok, err := h.claim(ctx)
		if err != nil && ctx.Err() == nil {
			h.log.Warn("claim the webhook consumer", "error", err)
		}
		if ok != holding {
			holding = ok
			h.log.Info("webhook consumer", "holding", ok)
		}
		if !ok {
			// Another router posts (or the store is out of reach): try again within
			// the lease, so a dead holder is replaced soon after its lease ends.
			if !sleep(ctx, h.cfg.Lease/3) {
				return
			}
			continue
		}
		if err := h.step(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("webhook", "error", err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

func (h *webhook) claim(ctx context.Context) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, h.storeTimeout)
	defer cancel()
	return h.rs.ClaimConsumer(cctx, webhookConsumer, h.holder, h.cfg.Lease)
}

// step reads one batch after the consumer's cursor and posts it; the cursor moves past it
// when the receiver took it or every attempt failed (then its receipts are dead letters).
func (h *webhook) step(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, h.storeTimeout)
	c, err := h.rs.Consumer(cctx, webhookConsumer)
	cancel()
	if err != nil {
		return fmt.Errorf("read the webhook's cursor: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, h.storeTimeout+webhookWait)
	batch, err := h.rs.ReadReceipts(rctx, c.Cursor, h.cfg.Batch, webhookWait)
	cancel()
	if err != nil {
		return fmt.Errorf("read receipts after %q: %w", c.Cursor, err)
	}
	if len(batch) == 0 {
		return nil
	}
	body, err := encodeBatch(batch)
	if err != nil {
		return err
	}
	// Renewed just before the POST: the reads above may have taken a good part of the
	// lease, and a POST must end while this router still holds the consumer, or another
	// one could post the same and later batches meanwhile.
	if ok, err := h.claim(ctx); err != nil {
		return fmt.Errorf("renew the webhook consumer before posting: %w", err)
	} else if !ok {
		return errors.New("lost the webhook consumer to another router before posting; it posts from the stored cursor")
	}
	sent, err := h.post(ctx, body)
	if err != nil {
		return err // the lease was lost, or ctx ended: the batch is someone else's now
	}
	next := store.Consumer{Cursor: batch[len(batch)-1].Cursor, Dead: c.Dead}
	if !sent {
		next.Dead += int64(len(batch))
		h.metrics.webhookDead.Add(float64(len(batch)))
		h.log.Warn("webhook: receipts given up on after every attempt failed", "receipts", len(batch),
			"first", batch[0].Cursor, "last", next.Cursor, "attempts", h.cfg.Attempts, "dead", next.Dead)
	}
	cctx, cancel = context.WithTimeout(ctx, h.storeTimeout)
	defer cancel()
	if err := h.rs.SetConsumer(cctx, webhookConsumer, h.holder, next); err != nil {
		// Not recorded: the batch is posted again (at least once, never lost).
		return fmt.Errorf("record the webhook's cursor %q: %w", next.Cursor, err)
	}
	return nil
}

func encodeBatch(batch []store.Receipt) ([]byte, error) {
	evs := make([]ReceiptEvent, len(batch))
	for i, rc := range batch {
		evs[i] = eventOf(rc)
	}
	body, err := json.Marshal(struct {
		Receipts []ReceiptEvent `json:"receipts"`
	}{evs})
	if err != nil {
		return nil, fmt.Errorf("encode receipts: %w", err)
	}
	return body, nil
}

// post sends body up to Attempts times, with jittered exponential back-off between, and
// reports whether the receiver answered 2xx. Before each retry it renews the consumer's
// lease: an error means it lost it (or ctx ended), and the batch is left to the new
// holder.
func (h *webhook) post(ctx context.Context, body []byte) (bool, error) {
	pause := h.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := h.postOnce(ctx, body)
		if err == nil {
			h.metrics.webhookSent.WithLabelValues("sent").Inc()
			return true, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		h.metrics.webhookSent.WithLabelValues("failed").Inc()
		h.log.Debug("webhook attempt failed", "attempt", attempt, "error", err)
		if attempt >= h.cfg.Attempts {
			return false, nil
		}
		// Full jitter on the upper half: routers that restart together spread out.
		if err := h.holdFor(ctx, pause/2+rand.N(pause/2+1)); err != nil {
			return false, err
		}
		pause = min(2*pause, h.cfg.MaxBackoff)
	}
}

// holdFor waits d, renewing the consumer's lease every third of it (a back-off may be
// longer than the lease); an error when the lease was lost or ctx ended.
func (h *webhook) holdFor(ctx context.Context, d time.Duration) error {
	for d > 0 {
		step := min(d, h.cfg.Lease/3)
		if !sleep(ctx, step) {
			return ctx.Err()
		}
		d -= step
		ok, err := h.claim(ctx)
		if err != nil {
			return fmt.Errorf("renew the webhook consumer: %w", err)
		}
		if !ok {
			return errors.New("webhook consumer taken over by another router")
		}
	}
	return nil
}

func (h *webhook) postOnce(ctx context.Context, body []byte) error {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Switchboard-Timestamp", ts)
	req.Header.Set("X-Switchboard-Signature", Signature(h.cfg.Secret, ts, body))
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("post receipts: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is kept
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post receipts: %s", resp.Status)
	}
	return nil
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
