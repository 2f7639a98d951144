package router

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/healthz"
	"github.com/switchboard-mqtt/switchboard/store"
)

// Cluster is what the dashboard reads from the coordinator; coord.Coordinator provides it.
// Its methods are called concurrently.
type Cluster interface {
	Quarantines(ctx context.Context) ([]coord.Quarantine, error)
	Leader(ctx context.Context, election string) (string, error)
}

// Overview is the cluster as the dashboard shows it (GET /v1/dashboard). Each part says
// what could not be read instead of failing the whole.
type Overview struct {
	At          time.Time          `json:"at"`
	Nodes       []NodeView         `json:"nodes"`
	Quarantines []coord.Quarantine `json:"quarantines"`
	// QuarantinesError is why the marks could not be read (they are then empty).
	QuarantinesError string       `json:"quarantines_error,omitempty"`
	Monitor          MonitorView  `json:"monitor"`
	Mailboxes        MailboxStats `json:"mailboxes"`
}

// NodeView is one node: its registration (while it is live, or as it was last seen live,
// while it is quarantined), its /healthz and the message rates computed from it.
type NodeView struct {
	coord.Member
	// Live: in the live set now. A quarantined node that left it is still shown, from the
	// registration this router last saw, while its mark stands.
	Live   bool            `json:"live"`
	Health *healthz.Served `json:"health,omitempty"`
	// HealthError is why /healthz could not be read.
	HealthError string `json:"health_error,omitempty"`
	// Rates are per second, from the node's counters between this overview's /healthz and
	// the one before (absent on the first, or after the node restarted).
	Rates *NodeRates `json:"rates,omitempty"`
}

// NodeRates are a node's counters turned into rates per second.
type NodeRates struct {
	MessagesIn       float64 `json:"messages_in_per_s"`
	MessagesOut      float64 `json:"messages_out_per_s"`
	DeliveriesOK     float64 `json:"deliveries_ok_per_s"`
	DeliveryFailures float64 `json:"delivery_failures_per_s"`
}

// MonitorView is the leading monitor and its last probe round, read from its admin
// endpoint, whose address it publishes with its candidacy (coord.Candidate).
type MonitorView struct {
	Leader    string `json:"leader,omitempty"` // empty: no monitor leads
	AdminAddr string `json:"admin_addr,omitempty"`
	// State is the leader's GET /v1/state, as it answered: leading, rounds, the last
	// decision, and its last probe of each node (see package monitor).
	State json.RawMessage `json:"state,omitempty"`
	Error string          `json:"error,omitempty"`
}

// MailboxStats is a bounded sample of the mailboxes' depths (see store.MailboxDepth).
type MailboxStats struct {
	SampledAt time.Time `json:"sampled_at,omitzero"`
	// Mailboxes and Messages are the non-empty mailboxes read and the messages they hold.
	Mailboxes int `json:"mailboxes"`
	Messages  int `json:"messages"`
	// Complete: every mailbox was read. Otherwise the sample stopped at its bound (or at
	// Error) and the figures cover the mailboxes read.
	Complete bool                 `json:"complete"`
	Buckets  []DepthBucket        `json:"buckets"`
	Deepest  []store.MailboxDepth `json:"deepest"`
	Error    string               `json:"error,omitempty"`
}

// DepthBucket counts the mailboxes whose depth is in [Min, Max] (no Max: and above).
type DepthBucket struct {
	Min   int `json:"min"`
	Max   int `json:"max,omitempty"`
	Count int `json:"count"`
}

// depthBounds are the upper bounds of the depth buckets but the last.
var depthBounds = []int{1, 10, 100, 1000, 10_000}

// overviewState is what the dashboard keeps between overviews; Dashboard.mu guards it.
type overviewState struct {
	last    Overview
	builtAt time.Time
	// seen is every node this router has seen live, while it is live or quarantined.
	seen map[string]coord.Member
	// prev is each node's last /healthz counters, for rates.
	prev      map[string]counterSample
	mailboxes MailboxStats
}

type counterSample struct {
	instance string
	at       time.Time
	c        healthz.Counters
}

// Overview returns the cluster overview, built at most once per Cache however many call.
func (d *Dashboard) Overview(ctx context.Context) Overview {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ov.builtAt.IsZero() && time.Since(d.ov.builtAt) < d.cfg.Cache {
		return d.ov.last
	}
	// One viewer leaving must not spoil the overview the others wait for: the reads are
	// bounded by their own timeouts, not by the request.
	ctx = context.WithoutCancel(ctx)
	d.ov.last = d.build(ctx)
	d.ov.builtAt = time.Now()
	return d.ov.last
}

// build reads everything an overview shows, the slow reads in parallel. d.mu is held.
func (d *Dashboard) build(ctx context.Context) Overview {
	ov := Overview{At: time.Now().UTC(), Quarantines: []coord.Quarantine{}}
	qctx, cancel := context.WithTimeout(ctx, d.cfg.FetchTimeout)
	marks, err := d.cluster.Quarantines(qctx)
	cancel()
	if err != nil {
		ov.QuarantinesError = err.Error()
	} else {
		ov.Quarantines = marks
		slices.SortFunc(ov.Quarantines, func(a, b coord.Quarantine) int { return cmp.Compare(a.Node, b.Node) })
	}
	ov.Nodes = d.nodes(marks, err == nil)

	var wg sync.WaitGroup
	for i := range ov.Nodes {
		wg.Go(func() { d.readHealth(ctx, &ov.Nodes[i]) })
	}
	wg.Go(func() { ov.Monitor = d.monitor(ctx) })
	if d.ov.mailboxes.SampledAt.IsZero() || time.Since(d.ov.mailboxes.SampledAt) >= d.cfg.MailboxInterval {
		wg.Go(func() { d.ov.mailboxes = d.sampleMailboxes(ctx) })
	}
	wg.Wait()
	ov.Mailboxes = d.ov.mailboxes

	prev := make(map[string]counterSample, len(ov.Nodes))
	for i := range ov.Nodes {
		n := &ov.Nodes[i]
		if n.Health == nil {
			continue
		}
		now := counterSample{instance: n.Instance, at: n.Health.CheckedAt, c: n.Health.Counters}
		if p, ok := d.ov.prev[n.ID]; ok {
			n.Rates = rates(p, now)
		}
		prev[n.ID] = now
	}
	d.ov.prev = prev
	return ov
}

// nodes lists the live nodes and the quarantined ones seen live before, by id, and
// forgets the nodes that are neither. With marksOK false (the marks could not be read)
// it forgets nothing.
func (d *Dashboard) nodes(marks []coord.Quarantine, marksOK bool) []NodeView {
	if d.ov.seen == nil {
		d.ov.seen = map[string]coord.Member{}
	}
	live := map[string]bool{}
	var out []NodeView
	for _, m := range d.r.members.Members() {
		live[m.ID] = true
		d.ov.seen[m.ID] = m
		out = append(out, NodeView{Member: m, Live: true})
	}
	marked := map[string]bool{}
	for _, q := range marks {
		marked[q.Node] = true
	}
	for id, m := range d.ov.seen {
		switch {
		case live[id]:
		case marked[id]:
			out = append(out, NodeView{Member: m})
		case marksOK:
			delete(d.ov.seen, id)
		}
	}
	slices.SortFunc(out, func(a, b NodeView) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// rates turns two samples of one process's counters into rates; nil when they are not of
// the same process or not apart in time.
func rates(prev, now counterSample) *NodeRates {
	secs := now.at.Sub(prev.at).Seconds()
	if prev.instance != now.instance || secs <= 0 {
		return nil
	}
	per := func(a, b int64) float64 { return max(float64(b-a), 0) / secs }
	return &NodeRates{
		MessagesIn:       per(prev.c.MessagesIn, now.c.MessagesIn),
		MessagesOut:      per(prev.c.MessagesOut, now.c.MessagesOut),
		DeliveriesOK:     per(prev.c.DeliveriesOK, now.c.DeliveriesOK),
		DeliveryFailures: per(prev.c.DeliveryFailures, now.c.DeliveryFailures),
	}
}

// readHealth fetches n's /healthz: 200 and 503 both carry the report.
func (d *Dashboard) readHealth(ctx context.Context, n *NodeView) {
	if n.AdminAddr == "" {
		n.HealthError = "the node publishes no admin address"
		return
	}
	body, status, err := d.fetch(ctx, "http://"+n.AdminAddr+"/healthz")
	if err != nil {
		n.HealthError = err.Error()
		return
	}
	var h healthz.Served
	if err := json.Unmarshal(body, &h); err != nil {
		n.HealthError = fmt.Sprintf("/healthz answered %d with %d bytes that are not its report: %v", status, len(body), err)
		return
	}
	h.Status = status
	if h.CheckedAt.IsZero() {
		h.CheckedAt = time.Now()
	}
	n.Health = &h
}

// monitor finds the leading monitor and reads its state.
func (d *Dashboard) monitor(ctx context.Context) MonitorView {
	lctx, cancel := context.WithTimeout(ctx, d.cfg.FetchTimeout)
	data, err := d.cluster.Leader(lctx, "monitor")
	cancel()
	switch {
	case errors.Is(err, coord.ErrNotFound):
		return MonitorView{} // no monitor leads
	case err != nil:
		return MonitorView{Error: "reading the monitor election: " + err.Error()}
	}
	c := coord.ParseCandidate(data)
	v := MonitorView{Leader: c.ID, AdminAddr: c.AdminAddr}
	if c.AdminAddr == "" {
		v.Error = "the leader publishes no admin address, so its probes cannot be shown"
		return v
	}
	body, status, err := d.fetch(ctx, "http://"+c.AdminAddr+"/v1/state")
	switch {
	case err != nil:
		v.Error = err.Error()
	case status != http.StatusOK || !json.Valid(body):
		v.Error = fmt.Sprintf("the monitor's /v1/state answered %d with %d bytes of no state", status, len(body))
	default:
		v.State = body
	}
	return v
}

// maxFetch bounds what one admin answer may hold.
const maxFetch = 1 << 20

// fetch GETs url within FetchTimeout and returns the body (at most maxFetch bytes).
func (d *Dashboard) fetch(ctx context.Context, url string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetch+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxFetch {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: answer over %d bytes", url, maxFetch)
	}
	return body, resp.StatusCode, nil
}

// sampleMailboxes walks the mailboxes (store.Mailboxes) up to the sample's bounds, within
// the router's store timeout, and sums up what it read.
func (d *Dashboard) sampleMailboxes(ctx context.Context) MailboxStats {
	ctx, cancel := context.WithTimeout(ctx, d.r.cfg.StoreTimeout)
	defer cancel()
	st := MailboxStats{SampledAt: time.Now().UTC()}
	depths := map[string]int{}
	cursor := ""
	for calls := 0; calls < d.cfg.MailboxCalls && len(depths) < d.cfg.MailboxSample; calls++ {
		page, next, err := d.r.store.Mailboxes(ctx, cursor, store.MaxMailboxesPage)
		if err != nil {
			st.Error = err.Error()
			break
		}
		for _, m := range page {
			depths[m.Client] = m.Depth
		}
		if next == "" {
			st.Complete = true
			break
		}
		cursor = next
	}
	return summarize(st, depths, d.cfg.Deepest)
}

// summarize fills st's figures from the depths read.
func summarize(st MailboxStats, depths map[string]int, deepest int) MailboxStats {
	st.Buckets = make([]DepthBucket, len(depthBounds)+1)
	lo := 1
	for i, hi := range depthBounds {
		st.Buckets[i] = DepthBucket{Min: lo, Max: hi}
		lo = hi + 1
	}
	st.Buckets[len(depthBounds)] = DepthBucket{Min: lo}
	all := make([]store.MailboxDepth, 0, len(depths))
	for client, n := range depths {
		all = append(all, store.MailboxDepth{Client: client, Depth: n})
		st.Mailboxes++
		st.Messages += n
		i, _ := slices.BinarySearch(depthBounds, n)
		st.Buckets[i].Count++
	}
	slices.SortFunc(all, func(a, b store.MailboxDepth) int {
		return cmp.Or(cmp.Compare(b.Depth, a.Depth), cmp.Compare(a.Client, b.Client))
	})
	st.Deepest = all[:min(deepest, len(all))]
	return st
}
