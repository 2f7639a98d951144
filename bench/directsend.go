package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// lane is what one sender sends to one client: one of the checker's streams (numbered
// from 0, and carried in every stamp). A sender waits for each answer before it sends
// again, so a lane's messages are accepted in sequence order — the order the API promises
// and the checker checks. Each client has one lane, unless a burst has more senders than
// clients; then a client's burst is split over several lanes.
type lane struct {
	client, sender int
	quota          int // messages of a burst; -1 when the run is bounded otherwise
}

// planLanes lays out max(Clients, Senders) lanes: lane l goes to client l%Clients from
// sender l%Senders.
func planLanes(cfg DirectConfig) []lane {
	n := max(cfg.Clients, cfg.Senders)
	lanes := make([]lane, n)
	for l := range lanes {
		c := l % cfg.Clients
		ln := lane{client: c, sender: l % cfg.Senders, quota: -1}
		if cfg.Burst > 0 {
			k := n / cfg.Clients // the client's lanes
			if c < n%cfg.Clients {
				k++
			}
			j := l / cfg.Clients // this lane's place among them
			ln.quota = cfg.Burst / k
			if j < cfg.Burst%k {
				ln.quota++
			}
		}
		lanes[l] = ln
	}
	return lanes
}

// sender posts messages on its lanes until its share of Count (or its lanes' bursts) is
// sent, the deadline passes (requests in flight then finish) or ctx ends.
func (d *direct) sender(ctx context.Context, s int, start, deadline time.Time) {
	cfg := d.cfg
	type owned struct {
		lane int
		seq  uint32
		left int // burst messages still to send; negative: no limit of its own
	}
	var lanes []owned
	quota := -1
	if cfg.Burst > 0 {
		quota = 0
	}
	for l, ln := range d.lanes {
		if ln.sender != s || ln.quota == 0 {
			continue
		}
		lanes = append(lanes, owned{lane: l, left: ln.quota})
		if ln.quota > 0 {
			quota += ln.quota
		}
	}
	if cfg.Count > 0 {
		quota = cfg.Count / cfg.Senders
		if s < cfg.Count%cfg.Senders {
			quota++
		}
	}
	if len(lanes) == 0 {
		return
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Batch*cfg.Senders) / cfg.Rate)
	}
	payload := newPayload(cfg.Size)
	type item struct {
		lane int
		seq  uint32
	}
	batch := make([]item, 0, cfg.Batch)
	var body, resp bytes.Buffer
	next, sent := 0, 0
	path := "/v1/messages"
	if cfg.Batch > 1 {
		path += "/batch"
	}
	maxWait := ""
	if cfg.MaxWait > 0 {
		maxWait = `"max_wait":"` + cfg.MaxWait.String() + `"`
	}
	// The lean client for http://, net/http for anything else.
	hc, err := newHTTPConn(cfg.API, cfg.Token, 60*time.Second)
	if err != nil {
		hc = nil
	} else {
		defer hc.Close()
	}
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	consecutiveErrs := 0
	for k := 0; quota < 0 || sent < quota; k++ {
		var stamp time.Duration
		if interval > 0 {
			// Senders start staggered so their requests interleave evenly.
			due := start.Add(time.Duration(k)*interval + time.Duration(s)*interval/time.Duration(cfg.Senders))
			if !deadline.IsZero() && due.After(deadline) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			stamp = due.Sub(d.epoch)
		} else {
			stamp = time.Since(d.epoch)
		}
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		n := cfg.Batch
		if quota >= 0 {
			n = min(n, quota-sent)
		}
		batch = batch[:0]
		body.Reset()
		if cfg.Batch > 1 {
			body.WriteByte('{')
			if maxWait != "" {
				body.WriteString(maxWait)
				body.WriteByte(',')
			}
			body.WriteString(`"messages":[`)
		}
		for j := range n {
			o := next
			it := item{lanes[o].lane, lanes[o].seq}
			lanes[o].seq++
			next = o + 1
			if lanes[o].left > 0 {
				if lanes[o].left--; lanes[o].left == 0 {
					lanes = append(lanes[:o], lanes[o+1:]...)
					next = o
				}
			}
			if next >= len(lanes) {
				next = 0
			}
			batch = append(batch, it)
			writeStamp(payload, Stamp{SentNS: int64(stamp), Stream: uint32(it.lane), Seq: it.seq})
			if j > 0 {
				body.WriteByte(',')
			}
			body.WriteString(`{"to":"`)
			body.WriteString(d.ids[d.lanes[it.lane].client])
			body.WriteString(`","payload":"`)
			body.Write(payload)
			body.WriteString(`","qos":`)
			body.WriteString(strconv.Itoa(int(cfg.QoS)))
			if cfg.NoReceipts {
				body.WriteString(`,"receipt":false`)
			}
			if cfg.DeliverIn > 0 {
				body.WriteString(`,"deliver_at":"`)
				body.WriteString(time.Now().Add(cfg.DeliverIn).UTC().Format(time.RFC3339Nano))
				body.WriteByte('"')
			}
			if cfg.Priority != "" {
				body.WriteString(`,"priority":"`)
				body.WriteString(cfg.Priority)
				body.WriteByte('"')
			}
			if cfg.Batch == 1 && maxWait != "" {
				body.WriteByte(',')
				body.WriteString(maxWait)
			}
			body.WriteByte('}')
		}
		if cfg.Batch > 1 {
			body.WriteString(`]}`)
		}
		sent += n
		d.sent.Add(int64(n))
		posted := time.Now()
		for _, it := range batch {
			if f := &d.firstSend[d.lanes[it.lane].client]; f.Load() == 0 {
				f.CompareAndSwap(0, int64(posted.Sub(d.epoch)))
			}
		}
		codes, err := d.post(ctx, hc, path, body.Bytes(), &resp, n)
		if err != nil {
			if ctx.Err() != nil {
				// Interrupted mid-request: the outcome is unknown.
				for _, it := range batch {
					d.check.Refuse(it.lane, it.seq)
				}
				return
			}
			d.recordError(err.Error())
			consecutiveErrs++
			if consecutiveErrs > 100 {
				time.Sleep(10 * time.Millisecond)
			}
		} else {
			d.answers.Record(time.Since(posted))
			consecutiveErrs = 0
		}
		for j, it := range batch {
			if err == nil && codes[j] == http.StatusOK {
				d.check.Accept(it.lane, it.seq)
				if d.fo != nil {
					d.fo.accepted(it.lane, it.seq)
				}
			} else {
				d.check.Refuse(it.lane, it.seq)
			}
		}
	}
}

// batchAnswer is the part of a batch answer the sender reads.
type batchAnswer struct {
	Results []struct {
		Code   int    `json:"code"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"results"`
}

// do sends one request, through hc when there is one, and reads the answer into resp.
func (d *direct) do(ctx context.Context, hc *httpConn, path string, body []byte, resp *bytes.Buffer) (int, error) {
	if hc != nil {
		return hc.Post(ctx, path, body, resp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(d.cfg.API, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if d.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.cfg.Token)
	}
	r, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	resp.Reset()
	if _, err = resp.ReadFrom(io.LimitReader(r.Body, 64<<20)); err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	return r.StatusCode, nil
}

// post sends one request and returns a status code per message.
func (d *direct) post(ctx context.Context, hc *httpConn, path string, body []byte, resp *bytes.Buffer, n int) ([]int, error) {
	code, err := d.do(ctx, hc, path, body, resp)
	if err != nil {
		return nil, err
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	codes := make([]int, n)
	if d.cfg.Batch == 1 {
		if code == http.StatusOK {
			codes[0] = http.StatusOK
			d.countOutcome(resp.Bytes())
			return codes, nil
		}
		return nil, fmt.Errorf("router answered %s: %s", status, strings.TrimSpace(truncate(resp.String(), 200)))
	}
	if code != http.StatusOK && code != http.StatusMultiStatus {
		return nil, fmt.Errorf("router answered %s: %s", status, strings.TrimSpace(truncate(resp.String(), 200)))
	}
	var a batchAnswer
	if err := json.Unmarshal(resp.Bytes(), &a); err != nil {
		return nil, fmt.Errorf("decode batch answer: %w", err)
	}
	if len(a.Results) != n {
		return nil, fmt.Errorf("batch answer has %d results for %d messages", len(a.Results), n)
	}
	d.mu.Lock()
	for i, it := range a.Results {
		codes[i] = it.Code
		if it.Code == http.StatusOK {
			d.outcomes[it.Status]++
		}
	}
	d.mu.Unlock()
	for _, it := range a.Results {
		if it.Code != http.StatusOK {
			d.recordError(fmt.Sprintf("batch item refused (%d): %s", it.Code, it.Error))
		}
	}
	return codes, nil
}

var (
	statusDelivered = []byte(`"status":"delivered"`)
	statusQueued    = []byte(`"status":"queued"`)
)

func (d *direct) countOutcome(answer []byte) {
	k := "other"
	switch {
	case bytes.Contains(answer, statusDelivered):
		k = "delivered"
	case bytes.Contains(answer, statusQueued):
		k = "queued"
	}
	d.mu.Lock()
	d.outcomes[k]++
	d.mu.Unlock()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
