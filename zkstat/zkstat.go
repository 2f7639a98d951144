// Package zkstat asks ZooKeeper servers about themselves with the four-letter words (srvr,
// stat, ruok, mntr) and decides whether an ensemble has a serving quorum: each server's
// mode (leader, follower, standalone), and whether a majority of the listed servers serves
// with a leader among them.
package zkstat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrNotWhitelisted means the server refused the word: it is missing from the server's
// 4lw.commands.whitelist (since ZooKeeper 3.5.3 only srvr is allowed by default).
var ErrNotWhitelisted = errors.New("four-letter word not in the server's 4lw.commands.whitelist")

// ErrNotServing means the server is up but not part of a serving quorum.
var ErrNotServing = errors.New("server is not currently serving requests (no quorum)")

// Word sends one four-letter word to addr and returns the server's whole answer.
func Word(ctx context.Context, addr, word string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, word); err != nil {
		return "", fmt.Errorf("%s: send %s: %w", addr, word, err)
	}
	// The server answers and closes the connection.
	b, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s: read %s answer: %w", addr, word, err)
	}
	out := string(b)
	switch {
	case strings.Contains(out, "is not executed because it is not in the whitelist"):
		return out, fmt.Errorf("%s: %s: %w", addr, word, ErrNotWhitelisted)
	case strings.Contains(out, "not currently serving requests"):
		return out, fmt.Errorf("%s: %w", addr, ErrNotServing)
	case out == "":
		return out, fmt.Errorf("%s: empty answer to %s (is this a ZooKeeper client port?)", addr, word)
	}
	return out, nil
}

// Server is what one server says of itself in answer to srvr or stat.
type Server struct {
	Addr        string  `json:"addr"`
	Mode        string  `json:"mode"` // leader, follower, observer, standalone
	Version     string  `json:"version"`
	Zxid        string  `json:"zxid"`
	LatencyMin  float64 `json:"latency_min_ms"`
	LatencyAvg  float64 `json:"latency_avg_ms"`
	LatencyMax  float64 `json:"latency_max_ms"`
	Received    int64   `json:"received"`
	Sent        int64   `json:"sent"`
	Connections int64   `json:"connections"`
	Outstanding int64   `json:"outstanding"`
	NodeCount   int64   `json:"node_count"`
	Error       string  `json:"error,omitempty"` // set when the server could not be asked
}

// Serving reports whether the server answered and is part of a serving quorum (or standalone).
func (s Server) Serving() bool {
	switch s.Mode {
	case "leader", "follower", "observer", "standalone":
		return s.Error == ""
	}
	return false
}

// Srvr asks addr for its srvr report. On failure the returned Server carries the error too.
func Srvr(ctx context.Context, addr string) (Server, error) {
	out, err := Word(ctx, addr, "srvr")
	if err != nil {
		return Server{Addr: addr, Error: err.Error()}, err
	}
	s, err := Parse(out)
	s.Addr = addr
	if err != nil {
		s.Error = err.Error()
	}
	return s, err
}

// Parse reads a srvr or stat answer.
func Parse(out string) (Server, error) {
	var s Server
	for line := range strings.SplitSeq(out, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "Zookeeper version":
			s.Version, _, _ = strings.Cut(val, ",")
		case "Latency min/avg/max":
			parts := strings.Split(val, "/")
			if len(parts) == 3 {
				s.LatencyMin, _ = strconv.ParseFloat(parts[0], 64)
				s.LatencyAvg, _ = strconv.ParseFloat(parts[1], 64)
				s.LatencyMax, _ = strconv.ParseFloat(parts[2], 64)
			}
		case "Received":
			s.Received, _ = strconv.ParseInt(val, 10, 64)
		case "Sent":
			s.Sent, _ = strconv.ParseInt(val, 10, 64)
		case "Connections":
			s.Connections, _ = strconv.ParseInt(val, 10, 64)
		case "Outstanding":
			s.Outstanding, _ = strconv.ParseInt(val, 10, 64)
		case "Zxid":
			s.Zxid = val
		case "Mode":
			s.Mode = val
		case "Node count":
			s.NodeCount, _ = strconv.ParseInt(val, 10, 64)
		}
	}
	if s.Mode == "" {
		return s, fmt.Errorf("no Mode line in the answer: %.80q", out)
	}
	return s, nil
}

// Ensemble is the state of every server of an ensemble.
type Ensemble struct {
	Servers []Server `json:"servers"`
	Leader  string   `json:"leader,omitempty"` // address of the leader, if one answered
	Serving int      `json:"serving"`          // servers in a serving quorum
	Quorum  bool     `json:"quorum"`           // a majority of the listed servers is serving
}

// Query asks every server in addrs, in parallel, each bounded by ctx.
func Query(ctx context.Context, addrs []string) Ensemble {
	res := make([]Server, len(addrs))
	done := make(chan struct{}, len(addrs))
	for i, a := range addrs {
		go func() {
			res[i], _ = Srvr(ctx, a)
			done <- struct{}{}
		}()
	}
	for range addrs {
		<-done
	}
	e := Ensemble{Servers: res}
	for _, s := range res {
		if s.Serving() {
			e.Serving++
		}
		if s.Mode == "leader" && s.Error == "" {
			e.Leader = s.Addr
		}
	}
	standalone := len(res) == 1 && res[0].Mode == "standalone" && res[0].Error == ""
	e.Quorum = standalone || (e.Leader != "" && e.Serving > len(addrs)/2)
	return e
}
