package router

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-mqtt/switchboard/store"
)

type metrics struct {
	messages  *prometheus.CounterVec
	refused   *prometheus.CounterVec
	seconds   *prometheus.HistogramVec
	uncertain prometheus.Counter
	depth     prometheus.Histogram

	receiptErrors *prometheus.CounterVec
	swept         prometheus.Counter
	// scheduledQueued counts scheduled messages queued when they came due.
	scheduledQueued prometheus.Counter
	webhookSent     *prometheus.CounterVec
	webhookDead     prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_messages_total",
			Help: "Messages accepted, by outcome (delivered, queued, expired).",
		}, []string{"status"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_refused_total",
			Help: "Messages not accepted, by reason (unavailable: the store could not be read or written; mailbox_full, store_full, rejected by the client's node, bad_request, unauthorized).",
		}, []string{"reason"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_router_send_seconds",
			Help:    "Time to accept a message (delivered or stored).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"status"}),
		uncertain: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_router_uncertain_deliveries_total",
			Help: "Direct deliveries whose outcome was unknown (node lost or no acknowledgement); queued, so a duplicate is possible.",
		}),
		depth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_router_mailbox_depth",
			Help:    "Depth of the recipient's mailbox after each message this router queued: deep or growing mailboxes show here first.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 … 16384
		}),
	}
	m.receiptErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_router_receipt_errors_total",
		Help: "Receipt store calls that failed, by operation (finish: a receipt the router owed was not recorded, the sweeper expires it later; sweep).",
	}, []string{"op"})
	m.swept = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_router_receipts_swept_total",
		Help: "Pending messages this router's sweeper declared expired.",
	})
	m.scheduledQueued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_router_scheduled_queued_total",
		Help: "Scheduled messages (deliver_at) this router queued when they came due.",
	})
	m.webhookSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_router_webhook_attempts_total",
		Help: "Webhook POSTs of receipt batches, by result (sent: 2xx; failed: an error or another status).",
	}, []string{"result"})
	m.webhookDead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_router_webhook_dead_letters_total",
		Help: "Receipts given up on after every webhook attempt failed.",
	})
	for _, op := range []string{"finish", "sweep"} {
		m.receiptErrors.WithLabelValues(op)
	}
	for _, res := range []string{"sent", "failed"} {
		m.webhookSent.WithLabelValues(res)
	}
	reg.MustRegister(m.receiptErrors, m.swept, m.scheduledQueued, m.webhookSent, m.webhookDead)
	reg.MustRegister(m.messages, m.refused, m.seconds, m.uncertain, m.depth,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The store's refusals start at 0, so an alert's rate() sees the first one.
	for _, reason := range []string{"unavailable", "mailbox_full", "store_full"} {
		m.refused.WithLabelValues(reason)
	}
	return m
}

func (m *metrics) observe(res Result, err error, d time.Duration) {
	if err != nil {
		reason := "unavailable"
		switch {
		case errors.Is(err, store.ErrMailboxFull):
			reason = "mailbox_full"
		case errors.Is(err, store.ErrStoreFull):
			reason = "store_full"
		case errors.Is(err, ErrRejected):
			reason = "rejected" // by the client's node; "unavailable" is left to the store's errors
		}
		m.refused.WithLabelValues(reason).Inc()
		return
	}
	m.messages.WithLabelValues(string(res.Status)).Inc()
	if res.Status == Queued && res.Depth > 0 {
		m.depth.Observe(float64(res.Depth))
	}
	m.seconds.WithLabelValues(string(res.Status)).Observe(d.Seconds())
}
