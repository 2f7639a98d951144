package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// eventsRead is the most receipts one read of the log takes for a stream.
const eventsRead = 100

// eventsWait is how long one read of the log waits for a receipt: short, so that a
// stream notices its end (and its keep-alive falls due) soon.
const eventsWait = time.Second

// EndStreams ends the open GET /v1/events streams, so that an HTTP server's Shutdown need
// not wait for them. Idempotent; Close calls it too.
func (r *Router) EndStreams() { r.endOnce.Do(func() { close(r.ending) }) }

// handleEvents serves GET /v1/events: the receipt log as server-sent events, one
// "event: receipt" per receipt, its cursor as the event's id. It starts after ?after= or
// the Last-Event-ID header (a reconnecting EventSource sends it), at the oldest receipt
// kept with ?from=oldest, and by default with the receipts recorded from now on.
func (r *Router) handleEvents(w http.ResponseWriter, req *http.Request) {
	rs, ok := r.receiptsOr501(w)
	if !ok {
		return
	}
	q := req.URL.Query()
	after, resume := q.Get("after"), q.Has("after")
	if !resume {
		if id := req.Header.Get("Last-Event-ID"); id != "" {
			after, resume = id, true
		}
	}
	switch from := q.Get("from"); {
	case from != "" && from != "oldest" && from != "now":
		r.badRequest(w, fieldError{"from", fmt.Sprintf("%.40q: want oldest or now", from)}, nil)
		return
	case from != "" && q.Has("after"):
		r.badRequest(w, fieldError{"from", "give from or after, not both"}, nil)
		return
	case resume:
		// A cursor this store does not know is refused now, not retried for ever.
		ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
		_, err := rs.ReadReceipts(ctx, after, 1, 0)
		cancel()
		if errors.Is(err, store.ErrBadCursor) {
			field := "after"
			if !q.Has("after") {
				field = "Last-Event-ID"
			}
			r.badRequest(w, fieldError{field, err.Error()}, nil)
			return
		}
	case from == "oldest":
		after = "" // ReadReceipts reads from the oldest kept
	default:
		ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
		tail, err := rs.ReceiptsTail(ctx)
		cancel()
		if err != nil {
			code, msg := storeError(err)
			writeJSON(w, code, ErrorBody{Error: "read the receipt log: " + msg})
			return
		}
		after = tail
	}
	select {
	case r.streams <- struct{}{}:
		defer func() { <-r.streams }()
	default:
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: fmt.Sprintf("%d event streams are open, the most allowed; retry later", r.cfg.Receipts.MaxStreams)})
		return
	}
	// The stream's reads end with the request or with EndStreams.
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	go func() {
		select {
		case <-r.ending:
			cancel()
		case <-ctx.Done():
		}
	}()
	// The server's write deadline (counted from the request) would cut the stream off: a
	// deadline per write replaces it, so only a client that stops reading is dropped.
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(r.cfg.Receipts.KeepAlive + 10*time.Second))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		err := rc.Flush()
		return err == nil || errors.Is(err, http.ErrNotSupported)
	}
	if !write(": receipts\n\n") { // the headers and a first line, so the client knows it is connected
		return
	}
	last := time.Now()
	for ctx.Err() == nil {
		// No longer than the keep-alive due next.
		wait := min(eventsWait, max(r.cfg.Receipts.KeepAlive-time.Since(last), time.Millisecond))
		rctx, rcancel := context.WithTimeout(ctx, r.cfg.StoreTimeout+wait)
		batch, err := rs.ReadReceipts(rctx, after, eventsRead, wait)
		rcancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("event stream: read the receipt log", "after", after, "error", err)
			if !sleep(ctx, eventsWait) {
				return
			}
		}
		for _, rcpt := range batch {
			b, err := json.Marshal(eventOf(rcpt))
			if err != nil {
				r.log.Error("encode receipt", "error", err)
				return
			}
			if !write("id: " + rcpt.Cursor + "\nevent: receipt\ndata: " + string(b) + "\n\n") {
				return
			}
			after, last = rcpt.Cursor, time.Now()
		}
		if time.Since(last) >= r.cfg.Receipts.KeepAlive {
			if !write(": keep-alive\n\n") {
				return
			}
			last = time.Now()
		}
	}
}
