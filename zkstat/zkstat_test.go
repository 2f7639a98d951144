package zkstat_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/zkstat"
)

var shared testenv.Shared

// Query asks the servers from goroutines of its own, so the package checks for leaks.
func TestMain(m *testing.M) { shared.MainLeakCheck(m) }

// TestParseFixedSample parses a srvr answer of a leader, written out in the layout
// ZooKeeper 3.8 uses (the leader adds a proposal-size line the parser must skip).
func TestParseFixedSample(t *testing.T) {
	const answer = "Zookeeper version: 3.8.4-abcdef0123, built on 2024-02-12 22:16 UTC\n" +
		"Latency min/avg/max: 1/2.75/40\n" +
		"Received: 1234\n" +
		"Sent: 1230\n" +
		"Connections: 7\n" +
		"Outstanding: 3\n" +
		"Zxid: 0x30000002a\n" +
		"Mode: leader\n" +
		"Node count: 42\n" +
		"Proposal sizes last/min/max: 92/36/512\n"
	got, err := zkstat.Parse(answer)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := zkstat.Server{
		Mode: "leader", Version: "3.8.4-abcdef0123", Zxid: "0x30000002a",
		LatencyMin: 1, LatencyAvg: 2.75, LatencyMax: 40,
		Received: 1234, Sent: 1230, Connections: 7, Outstanding: 3, NodeCount: 42,
	}
	if got != want {
		t.Fatalf("Parse =\n %+v\nwant\n %+v", got, want)
	}
	if !got.Serving() {
		t.Fatal("a parsed leader does not report Serving")
	}
}

// TestParseWithoutModeFails: an answer that is not a srvr/stat report (here ruok's) is an
// error that quotes the answer, not a server with an empty mode.
func TestParseWithoutModeFails(t *testing.T) {
	s, err := zkstat.Parse("imok")
	if err == nil {
		t.Fatalf("Parse(imok) = %+v, want an error", s)
	}
	if !strings.Contains(err.Error(), "Mode") || !strings.Contains(err.Error(), "imok") {
		t.Fatalf("error %q does not say the Mode line is missing and quote the answer", err)
	}
	if s.Serving() {
		t.Fatal("a server without a mode reports Serving")
	}
}

// TestParseRealAnswers captures srvr and stat from every server of a real ensemble and
// parses them: stat adds a client list whose lines contain colons too.
func TestParseRealAnswers(t *testing.T) {
	e := shared.Ensemble(t)
	ctx := testenv.Context(t, 20*time.Second)
	leaders := 0
	for _, addr := range e.Addrs() {
		for _, word := range []string{"srvr", "stat"} {
			out, err := zkstat.Word(ctx, addr, word)
			if err != nil {
				t.Fatalf("%s to %s: %v", word, addr, err)
			}
			if word == "stat" && !strings.Contains(out, "Clients:") {
				t.Fatalf("stat answer of %s has no client list:\n%s", addr, out)
			}
			s, err := zkstat.Parse(out)
			if err != nil {
				t.Fatalf("Parse(%s of %s): %v\n%s", word, addr, err, out)
			}
			if s.Mode != "leader" && s.Mode != "follower" {
				t.Fatalf("%s of %s: mode %q, want leader or follower\n%s", word, addr, s.Mode, out)
			}
			if word == "srvr" && s.Mode == "leader" {
				leaders++
			}
			if !strings.HasPrefix(s.Version, "3.") || strings.Contains(s.Version, "built on") {
				t.Fatalf("%s of %s: version %q, want the bare version\n%s", word, addr, s.Version, out)
			}
			if !strings.HasPrefix(s.Zxid, "0x") {
				t.Fatalf("%s of %s: zxid %q\n%s", word, addr, s.Zxid, out)
			}
			// Our own connection is counted; the tree holds at least / and /zookeeper/*.
			if s.Connections < 1 || s.NodeCount < 2 || s.Received < 1 {
				t.Fatalf("%s of %s: counters not read: %+v\n%s", word, addr, s, out)
			}
			if s.LatencyMin < 0 || s.LatencyAvg < s.LatencyMin || s.LatencyMax < s.LatencyAvg {
				t.Fatalf("%s of %s: latency %v/%v/%v out of order", word, addr, s.LatencyMin, s.LatencyAvg, s.LatencyMax)
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d servers report Mode: leader, want exactly 1", leaders)
	}
}

// TestWordSrvr: srvr is whitelisted (and the default in every ZooKeeper since 3.5.3).
func TestWordSrvr(t *testing.T) {
	e := shared.Ensemble(t)
	addr := e.Addrs()[0]
	out, err := zkstat.Word(testenv.Context(t, 10*time.Second), addr, "srvr")
	if err != nil {
		t.Fatalf("srvr: %v", err)
	}
	if !strings.Contains(out, "Mode: ") || !strings.Contains(out, "Zookeeper version: ") {
		t.Fatalf("srvr answer is not a server report:\n%s", out)
	}
	s, err := zkstat.Srvr(testenv.Context(t, 10*time.Second), addr)
	if err != nil || s.Addr != addr || !s.Serving() || s.Error != "" {
		t.Fatalf("Srvr(%s) = %+v, %v; want a serving server at that address", addr, s, err)
	}
}

// TestWordNotWhitelisted: the test ensemble whitelists srvr,stat,ruok,mntr,conf,cons only;
// any other word is refused by the server and reported as ErrNotWhitelisted, naming the
// word and the server.
func TestWordNotWhitelisted(t *testing.T) {
	e := shared.Ensemble(t)
	addr := e.Addrs()[1]
	for _, word := range []string{"wchs", "dump"} {
		out, err := zkstat.Word(testenv.Context(t, 10*time.Second), addr, word)
		if !errors.Is(err, zkstat.ErrNotWhitelisted) {
			t.Fatalf("%s: err = %v (answer %q), want ErrNotWhitelisted", word, err, out)
		}
		if !strings.Contains(err.Error(), word) || !strings.Contains(err.Error(), addr) {
			t.Fatalf("%s: error %q does not name the word and the server %s", word, err, addr)
		}
		if !strings.Contains(out, "not in the whitelist") {
			t.Fatalf("%s: the server's answer %q is not returned alongside the error", word, out)
		}
	}
	// A whitelisted word other than srvr passes through untouched.
	if out, err := zkstat.Word(testenv.Context(t, 10*time.Second), addr, "ruok"); err != nil || out != "imok" {
		t.Fatalf("ruok = %q, %v; want imok", out, err)
	}
}

// TestWordUnreachable: nothing listens at the address; the error names it.
func TestWordUnreachable(t *testing.T) {
	addr := testenv.RefusedAddr(t)
	start := time.Now()
	_, err := zkstat.Word(testenv.Context(t, 5*time.Second), addr, "srvr")
	if err == nil {
		t.Fatalf("srvr to %s (nothing listening) succeeded", addr)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q does not name %s", err, addr)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a refused connection took %v to report", d)
	}
	s, err := zkstat.Srvr(testenv.Context(t, 5*time.Second), addr)
	if err == nil || s.Addr != addr || s.Error == "" || s.Serving() {
		t.Fatalf("Srvr(%s) = %+v, %v; want the address with an error, not serving", addr, s, err)
	}
}

// TestWordNonZooKeeper: a listener that reads the word and closes without a word of answer
// is not mistaken for a server report.
func TestWordNonZooKeeper(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		c, err := l.Accept()
		if err != nil {
			return
		}
		// Read the word first: closing with unread data would reset the connection.
		_, _ = io.ReadFull(c, make([]byte, 4))
		c.Close()
	}()
	t.Cleanup(func() { l.Close(); <-accepted })
	addr := l.Addr().String()
	_, err = zkstat.Word(testenv.Context(t, 5*time.Second), addr, "srvr")
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "empty answer") {
		t.Fatalf("Word to a silent listener: %v; want an empty-answer error naming %s", err, addr)
	}
}

// TestQueryHealthy: a healthy 3-server ensemble has a quorum, every server serving and
// exactly one leader, which Query names.
func TestQueryHealthy(t *testing.T) {
	e := shared.Ensemble(t)
	st := zkstat.Query(testenv.Context(t, 10*time.Second), e.Addrs())
	if !st.Quorum || st.Serving != 3 {
		t.Fatalf("Query = %+v, want a quorum with 3 serving", st)
	}
	if len(st.Servers) != 3 {
		t.Fatalf("Query returned %d servers, want 3", len(st.Servers))
	}
	var leaders []string
	for i, s := range st.Servers {
		if s.Addr != e.Addrs()[i] {
			t.Fatalf("server %d is %s, want %s (the order asked)", i, s.Addr, e.Addrs()[i])
		}
		if s.Error != "" {
			t.Fatalf("server %s: %s", s.Addr, s.Error)
		}
		if s.Mode == "leader" {
			leaders = append(leaders, s.Addr)
		}
	}
	if len(leaders) != 1 || st.Leader != leaders[0] {
		t.Fatalf("leaders %v, Ensemble.Leader %q; want exactly one, named", leaders, st.Leader)
	}
}

// TestQueryLosesQuorum stops two of three servers of a private ensemble: Query at once
// reports no quorum with an error for each stopped server, and the survivor soon says it is
// not serving.
func TestQueryLosesQuorum(t *testing.T) {
	e := testenv.Ensemble(t)
	ctx := testenv.Context(t, 20*time.Second)
	if st := zkstat.Query(ctx, e.Addrs()); !st.Quorum {
		t.Fatalf("fresh ensemble has no quorum: %+v", st)
	}
	// Stop the leader and one follower, so the survivor is a follower that loses its leader.
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped := map[string]bool{}
	var survivor *backends.ZKServer
	for _, s := range e.Servers() {
		if s != leader && survivor == nil {
			survivor = s
			continue
		}
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		stopped[s.ClientAddr] = true
	}
	if len(stopped) != 2 || survivor == nil {
		t.Fatalf("stopped %v, survivor %v: want two stopped and one left", stopped, survivor)
	}

	st := zkstat.Query(testenv.Context(t, 5*time.Second), e.Addrs())
	if st.Quorum {
		t.Fatalf("Query with two of three servers stopped reports a quorum: %+v", st)
	}
	for _, s := range st.Servers {
		if stopped[s.Addr] && (s.Error == "" || !strings.Contains(s.Error, s.Addr) || s.Serving()) {
			t.Fatalf("stopped server %s: %+v, want an error naming it", s.Addr, s)
		}
	}
	if st.Leader != "" {
		t.Fatalf("Leader %q although the leader was stopped", st.Leader)
	}

	// The survivor notices it lost the quorum and refuses to serve.
	testenv.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		_, err := zkstat.Word(testenv.Context(t, 2*time.Second), survivor.ClientAddr, "srvr")
		if !errors.Is(err, zkstat.ErrNotServing) {
			return errors.New("survivor still answers srvr without ErrNotServing: " + errString(err))
		}
		return nil
	})
	st = zkstat.Query(testenv.Context(t, 5*time.Second), e.Addrs())
	if st.Quorum || st.Serving != 0 {
		t.Fatalf("after the survivor stopped serving: %+v, want no quorum and none serving", st)
	}
	for _, s := range st.Servers {
		if s.Error == "" {
			t.Fatalf("server %s has no error in %+v", s.Addr, st)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
