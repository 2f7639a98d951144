package monitor

import (
	"fmt"
	"sort"
)

// history is what the leader remembers of one node between rounds.
type history struct {
	fails, slow, erroring int     // consecutive rounds
	recent                []Probe // the last few probes, newest last: the evidence
	last                  *Probe
	gone                  bool // the last round found it Gone
}

const keepProbes = 5

func (h *history) add(p Probe) {
	h.recent = append(h.recent, p)
	if len(h.recent) > keepProbes {
		h.recent = h.recent[len(h.recent)-keepProbes:]
	}
	h.last = &h.recent[len(h.recent)-1]
}

// verdict is the policy's decision for one round.
type verdict struct {
	// SelfSuspect: most nodes failed at once; the monitor doubts itself and acts on none.
	SelfSuspect bool
	// Quarantine names the node to quarantine this round ("" for none) and why.
	Quarantine string
	Reason     string
	// Held explains a quarantine the limits prevented.
	Held string
	// Gone names the nodes found Gone this round that were not the round before.
	Gone []string
}

// judge updates every node's streaks from this round's probes and decides. probes holds
// this round's result per live, unmarked node; marks is how many quarantine marks stand.
func judge(cfg Config, hist map[string]*history, probes map[string]Probe, marks int) verdict {
	var v verdict
	failed, running := 0, 0
	for _, p := range probes {
		if !p.Gone {
			running++
			if p.Failed() {
				failed++
			}
		}
	}
	// A monitor that cannot reach most nodes is more likely cut off itself: act on none,
	// and do not count the round against anyone. Gone nodes count on neither side.
	if running >= 2 && failed*2 > running {
		v.SelfSuspect = true
		return v
	}
	e2e := func(p Probe) (float64, bool) { return p.E2E.Millis, p.E2E.OK }
	ratio := func(p Probe) (float64, bool) { return p.FailureRatio, p.FailureRatio >= 0 }
	peerE2E := map[string]float64{}
	peerRatio := map[string]float64{}
	for id, p := range probes {
		h := hist[id]
		h.add(p)
		if p.Gone && !h.gone {
			v.Gone = append(v.Gone, id)
		}
		h.gone = p.Gone
		switch {
		case p.Gone:
			// Not sick, and not a candidate: its session's end takes it out. Its streaks
			// stand, so that a node failing between restarts (a crash loop) still adds up.
			continue
		case p.Failed():
			h.fails++
		default:
			h.fails = 0
		}
		// Slow: above the absolute floor and SlowFactor times the peers' median.
		peerE2E[id] = peerMedian(probes, id, e2e)
		if p.E2E.OK && p.E2E.Millis > max(ms(cfg.SlowLatency), peerE2E[id]*cfg.SlowFactor) {
			h.slow++
		} else {
			h.slow = 0
		}
		peerRatio[id] = peerMedian(probes, id, ratio)
		if p.FailureRatio >= cfg.ErrorRatio && p.FailureRatio >= 3*peerRatio[id] {
			h.erroring++
		} else {
			h.erroring = 0
		}
	}
	sort.Strings(v.Gone)

	type candidate struct {
		id, reason string
		score      int
	}
	var cands []candidate
	for id := range probes {
		h := hist[id]
		switch {
		case h.fails >= cfg.FailAfter:
			cands = append(cands, candidate{id, fmt.Sprintf("%d consecutive failed probe rounds (%s)", h.fails, failures(*h.last)), 3*h.fails + 100})
		case h.slow >= cfg.SlowAfter:
			cands = append(cands, candidate{id, fmt.Sprintf("end-to-end latency %.1fms for %d consecutive rounds, far above its peers (median %.1fms)",
				h.last.E2E.Millis, h.slow, peerE2E[id]), h.slow})
		case h.erroring >= cfg.SlowAfter:
			cands = append(cands, candidate{id, fmt.Sprintf("delivery failure ratio %.2f for %d consecutive rounds (peers' median %.2f)",
				h.last.FailureRatio, h.erroring, peerRatio[id]), h.erroring})
		}
	}
	if len(cands) == 0 {
		return v
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].id < cands[j].id
	})
	c := cands[0]
	// Healthy nodes left if c goes: live, unmarked, passing this round, and not c.
	healthy := 0
	for id, p := range probes {
		if id != c.id && !p.Failed() {
			healthy++
		}
	}
	switch {
	case marks+1 > cfg.MaxQuarantined:
		v.Held = fmt.Sprintf("%s is unhealthy (%s) but %d node(s) are already quarantined (max %d)", c.id, c.reason, marks, cfg.MaxQuarantined)
	case healthy < cfg.MinHealthy:
		v.Held = fmt.Sprintf("%s is unhealthy (%s) but only %d healthy node(s) would remain (min %d)", c.id, c.reason, healthy, cfg.MinHealthy)
	default:
		v.Quarantine, v.Reason = c.id, c.reason
	}
	return v
}

func failures(p Probe) string {
	var s []string
	if !p.MQTT.OK {
		s = append(s, "mqtt ping: "+p.MQTT.Error)
	}
	if !p.E2E.OK {
		s = append(s, "end to end: "+p.E2E.Error)
	}
	if !p.Health.OK {
		s = append(s, "readiness: "+p.Health.Error)
		s = append(s, p.Failing...)
	}
	return fmt.Sprint(s)
}

// peerMedian is the median of the values f reports present, over every node but self.
func peerMedian(probes map[string]Probe, self string, f func(Probe) (float64, bool)) float64 {
	var xs []float64
	for id, p := range probes {
		if id == self {
			continue
		}
		if x, ok := f(p); ok {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}
