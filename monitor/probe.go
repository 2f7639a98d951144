package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord"
	"github.com/switchboard-mqtt/switchboard/healthz"
	"github.com/switchboard-mqtt/switchboard/inbox"
)

// Check is one probe's outcome.
type Check struct {
	OK     bool    `json:"ok"`
	Millis float64 `json:"ms,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// Probe is one round's probes of one node: the evidence a quarantine carries.
type Probe struct {
	At     time.Time `json:"at"`
	MQTT   Check     `json:"mqtt_ping"`
	E2E    Check     `json:"end_to_end"`
	Health Check     `json:"readiness"`
	// Failing names the node's own readiness checks that failed.
	Failing []string `json:"failing,omitempty"`
	// Gone: the process the member entry names is not running (crashed, killed, stopped by
	// hand): both the MQTT port and the admin endpoint refused the connection, or the admin
	// endpoint answers for another instance (a restarted process, which waits to register
	// until its predecessor's entry has gone, and refuses MQTT clients meanwhile). Gone is
	// not sick: the entry leaves the live set when its session ends, and the restarted
	// process registers; a quarantine would keep it out until someone released it.
	Gone bool `json:"gone,omitempty"`
	// Rates from the node's counters since the previous round (per second).
	MessagesIn       float64 `json:"messages_in_per_s"`
	MessagesOut      float64 `json:"messages_out_per_s"`
	DeliveryFailures float64 `json:"delivery_failures_per_s"`
	// FailureRatio is failed / (ok + failed) deliveries since the previous round; -1 when
	// there were too few to judge.
	FailureRatio float64 `json:"delivery_failure_ratio"`

	counters healthz.Counters
}

// Failed reports whether any hard probe failed.
func (p Probe) Failed() bool { return !p.MQTT.OK || !p.E2E.OK || !p.Health.OK }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// probe runs every probe against one node, bounded by ctx. The MQTT probes and the
// readiness check run at once, each with all of ctx's time: one after the other, an MQTT
// probe that used up the timeout left the readiness check none, and its evidence said the
// node's /healthz had failed when it was never asked.
func (m *Monitor) probe(ctx context.Context, member coord.Member, prev *Probe) Probe {
	p := Probe{At: time.Now().UTC(), FailureRatio: -1}
	type health struct {
		h      healthz.Report
		status int
		err    error
		took   time.Duration
	}
	healthDone := make(chan health, 1)
	go func() {
		start := time.Now()
		h, status, err := fetchHealth(ctx, m.http, member.AdminAddr)
		healthDone <- health{h, status, err, time.Since(start)}
	}()
	id := fmt.Sprintf("sb-probe.%s.%s", m.cfg.ID, member.ID)
	// Every client may use exactly its own probe topic, whatever its credentials.
	topic := inbox.ProbeTopicPrefix + id
	res, mqttErr := probeMQTT(ctx, member, id, topic, m.cfg.ProbeUsername, m.cfg.ProbePassword)
	switch err := mqttErr; {
	case err != nil && res.Ping == 0:
		p.MQTT = Check{Error: err.Error()}
		p.E2E = Check{Error: "not attempted: MQTT ping failed"}
	case err != nil:
		p.MQTT = Check{OK: true, Millis: ms(res.Ping)}
		p.E2E = Check{Error: err.Error()}
	default:
		p.MQTT = Check{OK: true, Millis: ms(res.Ping)}
		p.E2E = Check{OK: true, Millis: ms(res.E2E)}
	}

	hr := <-healthDone
	h, status, err := hr.h, hr.status, hr.err
	p.Health.Millis = ms(hr.took)
	if err == nil && h.Node != "" && h.Node != member.ID {
		// Another node's report (two entries advertising one admin address): neither its
		// checks nor its counters say anything of this one.
		err = fmt.Errorf("admin endpoint %s answers for node %s", member.AdminAddr, h.Node)
	}
	switch {
	case err != nil:
		p.Health.Error = err.Error()
	case status != http.StatusOK:
		p.Health.Error = fmt.Sprintf("healthz answered %d", status)
		for name, c := range h.Checks {
			if !c.OK {
				p.Failing = append(p.Failing, name+": "+c.Detail)
			}
		}
		sort.Strings(p.Failing)
		if h.Gate != "" {
			p.Failing = append(p.Failing, "gate: "+h.Gate)
		}
	default:
		p.Health.OK = true
	}
	p.Gone = errors.Is(mqttErr, syscall.ECONNREFUSED) && errors.Is(err, syscall.ECONNREFUSED) ||
		err == nil && h.Node == member.ID && h.Instance != "" && member.Instance != "" && h.Instance != member.Instance
	if err == nil {
		p.counters = h.Counters
		if prev != nil && !prev.At.IsZero() {
			secs := p.At.Sub(prev.At).Seconds()
			if secs > 0 {
				p.MessagesIn = float64(h.Counters.MessagesIn-prev.counters.MessagesIn) / secs
				p.MessagesOut = float64(h.Counters.MessagesOut-prev.counters.MessagesOut) / secs
				p.DeliveryFailures = float64(h.Counters.DeliveryFailures-prev.counters.DeliveryFailures) / secs
			}
			ok := h.Counters.DeliveriesOK - prev.counters.DeliveriesOK
			failed := h.Counters.DeliveryFailures - prev.counters.DeliveryFailures
			if ok+failed >= m.cfg.ErrorMinVolume && ok >= 0 && failed >= 0 {
				p.FailureRatio = float64(failed) / float64(ok+failed)
			}
		}
	}
	return p
}

// fetchHealth reads a node's /healthz.
func fetchHealth(ctx context.Context, client *http.Client, adminAddr string) (healthz.Report, int, error) {
	var h healthz.Report
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/healthz", nil)
	if err != nil {
		return h, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return h, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return h, resp.StatusCode, err
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return h, resp.StatusCode, fmt.Errorf("healthz body: %w", err)
	}
	return h, resp.StatusCode, nil
}
