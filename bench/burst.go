package bench

import (
	"slices"
	"time"
)

// BurstStats is what a burst run (DirectConfig.Burst) measured client by client.
type BurstStats struct {
	// PerClient is the burst each client was sent; Clients how many got one.
	PerClient int `json:"per_client"`
	Clients   int `json:"clients"`
	// ClientsComplete counts the clients that received every accepted message of their
	// burst, in order.
	ClientsComplete int `json:"clients_complete"`
	// ClientPerS is a client's throughput: the messages it received over the time from
	// the first request with a message for it to its last receipt, spread over clients.
	ClientPerS Spread `json:"client_per_s"`
	// ClientSeconds is that time, spread over clients.
	ClientSeconds Spread `json:"client_seconds"`
}

// Spread is the smallest, median and largest of a figure over clients (zero when no
// client had one).
type Spread struct {
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	Max float64 `json:"max"`
}

func spreadOf(vals []float64) Spread {
	if len(vals) == 0 {
		return Spread{}
	}
	return Spread{Min: slices.Min(vals), P50: Median(vals), Max: slices.Max(vals)}
}

// burstStats works out the per-client figures once the run has drained.
func (d *direct) burstStats() *BurstStats {
	bs := &BurstStats{PerClient: d.cfg.Burst, Clients: d.cfg.Clients}
	incomplete := make([]bool, d.cfg.Clients)
	for l, ln := range d.lanes {
		if !d.check.StreamOK(l) {
			incomplete[ln.client] = true
		}
	}
	var rates, secs []float64
	for c := range d.cfg.Clients {
		if !incomplete[c] {
			bs.ClientsComplete++
		}
		first, last, n := d.firstSend[c].Load(), d.lastRecvAt[c].Load(), d.receivedFor[c].Load()
		if first == 0 || last <= first || n == 0 {
			continue
		}
		sec := time.Duration(last - first).Seconds()
		rates = append(rates, float64(n)/sec)
		secs = append(secs, sec)
	}
	bs.ClientPerS, bs.ClientSeconds = spreadOf(rates), spreadOf(secs)
	return bs
}
