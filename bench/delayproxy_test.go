package bench

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

// listen starts a TCP server on 127.0.0.1:0 that runs handle for each connection (and
// closes it after), until cleanup.
func listen(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string, delay time.Duration) *DelayProxy {
	t.Helper()
	cfg := DefaultDelayProxyConfig()
	cfg.Target, cfg.Delay = target, delay
	p, err := StartDelayProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dialProxy(t *testing.T, p *DelayProxy) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// slack bounds how late a delayed byte may be on a loaded machine; the tests check
// delays from below exactly and from above only loosely.
const slack = time.Second

func TestDelayProxyDelaysEachDirection(t *testing.T) {
	const delay = 50 * time.Millisecond
	type times struct{ arrived, replied time.Time }
	upstream := make(chan times, 3)
	target := listen(t, func(c net.Conn) {
		var b [1]byte
		for {
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			tm := times{arrived: time.Now()}
			tm.replied = time.Now()
			if _, err := c.Write(b[:]); err != nil {
				return
			}
			upstream <- tm
		}
	})
	c := dialProxy(t, startProxy(t, target, delay))
	for i := range 3 {
		sent := time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		if b[0] != byte(i) {
			t.Fatalf("got byte %d back, want %d", b[0], i)
		}
		tm := <-upstream
		up, down := tm.arrived.Sub(sent), back.Sub(tm.replied)
		if up < delay || up > delay+slack {
			t.Errorf("client to target took %v, want %v (+ at most %v)", up, delay, slack)
		}
		if down < delay || down > delay+slack {
			t.Errorf("target to client took %v, want %v (+ at most %v)", down, delay, slack)
		}
	}
}

func TestDelayProxyStreamsIntactAndInOrder(t *testing.T) {
	target := listen(t, func(c net.Conn) { _, _ = io.Copy(c, c) }) // echo
	p := startProxy(t, target, 20*time.Millisecond)
	c := dialProxy(t, p)
	data := make([]byte, 4<<20) // more than the proxy's buffer of each direction
	_, _ = rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		rest := data
		for len(rest) > 0 {
			n := min(len(rest), 1+mrand.IntN(40<<10))
			if _, err := c.Write(rest[:n]); err != nil {
				werr <- err
				return
			}
			rest = rest[n:]
		}
		werr <- c.CloseWrite() // passed on: the echo ends, and so does what we read
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		i := 0
		for i < min(len(got), len(data)) && got[i] == data[i] {
			i++
		}
		t.Fatalf("echo of %d bytes came back as %d bytes, first difference at %d", len(data), len(got), i)
	}
}

func TestDelayProxyKeepsStreaming(t *testing.T) {
	// Many small writes spaced out: were the delay a pause per write rather than latency,
	// 100 of them would take 100 × 50 ms.
	const delay, writes = 50 * time.Millisecond, 100
	target := listen(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	c := dialProxy(t, startProxy(t, target, delay))
	start := time.Now()
	go func() {
		for i := range writes {
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	got := make([]byte, writes)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("byte %d is %d", i, b)
		}
	}
	if took < 2*delay || took > writes*delay/2 {
		t.Fatalf("%d writes through a %v proxy took %v: want more than a round trip, far less than a delay each", writes, delay, took)
	}
}

func TestDelayProxyPassesHalfClose(t *testing.T) {
	target := listen(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client's half close arrives
		_, _ = c.Write(append([]byte("got "), b...))
	})
	c := dialProxy(t, startProxy(t, target, 10*time.Millisecond))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got hello" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestDelayProxyCloseCutsConnections(t *testing.T) {
	target := listen(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	p := startProxy(t, target, time.Second)
	c := dialProxy(t, p)
	if _, err := c.Write([]byte("waiting out a long delay")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the proxy read it
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	p.Close() // idempotent
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the client's connection survived Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}

func TestDelayProxyTargetDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	target := ln.Addr().String()
	ln.Close()
	c := dialProxy(t, startProxy(t, target, 10*time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection to a dead target stayed open")
	}
}

func TestDelayProxyConfig(t *testing.T) {
	ok := DefaultDelayProxyConfig()
	ok.Target = "127.0.0.1:1883"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		change func(*DelayProxyConfig)
		want   string
	}{
		{func(c *DelayProxyConfig) { c.Listen = "0.0.0.0:0" }, "Listen"},
		{func(c *DelayProxyConfig) { c.Listen = ":0" }, "Listen"},
		{func(c *DelayProxyConfig) { c.Target = "10.0.0.1:1883" }, "Target"},
		{func(c *DelayProxyConfig) { c.Target = "localhost:1883" }, "Target"},
		{func(c *DelayProxyConfig) { c.Target = "" }, "Target"},
		{func(c *DelayProxyConfig) { c.Delay = -time.Millisecond }, "Delay"},
		{func(c *DelayProxyConfig) { c.Delay = time.Minute }, "Delay"},
		{func(c *DelayProxyConfig) { c.Buffer = 1 << 30 }, "buffer"},
		{func(c *DelayProxyConfig) { c.MaxConns = 0 }, "connections"},
	} {
		cfg := ok
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", cfg, err, c.want)
		}
		if _, err := StartDelayProxy(cfg); err == nil {
			t.Errorf("%+v: started", cfg)
		}
	}
	cfg := ok
	cfg.Listen = "[::1]:0" // loopback in IPv6 is loopback too (if the machine has it)
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestDelayQueueIsBounded(t *testing.T) {
	q := newDelayQueue(1000)
	now := time.Now()
	if !q.push(make([]byte, 900-chunkOverhead), now) {
		t.Fatal("push refused")
	}
	pushed := make(chan bool, 1)
	go func() { pushed <- q.push(make([]byte, 200), now) }()
	select {
	case <-pushed:
		t.Fatal("a push past the limit did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	ch, ok := q.pop()
	if !ok || len(ch.b) != 900-chunkOverhead {
		t.Fatalf("pop %d bytes, %v", len(ch.b), ok)
	}
	select {
	case <-pushed:
		t.Fatal("popping alone made room: the bytes are not written yet")
	case <-time.After(20 * time.Millisecond):
	}
	q.release(len(ch.b))
	if !<-pushed {
		t.Fatal("push refused after release")
	}
	q.finish(true)
	if ch, ok := q.pop(); !ok || len(ch.b) != 200 {
		t.Fatal("the last chunk was lost at end of stream")
	}
	if _, ok := q.pop(); ok || !q.clean() {
		t.Fatal("pop after the end of a clean stream")
	}
	// An abort wakes a waiting reader.
	q = newDelayQueue(1000)
	q.push(make([]byte, 900), now)
	go func() { pushed <- q.push(make([]byte, 900), now) }()
	time.Sleep(10 * time.Millisecond)
	q.abort()
	if <-pushed {
		t.Fatal("push succeeded into an aborted queue")
	}
}

// BenchmarkDelayProxy is the throughput of one connection through the proxy, echoed back.
func BenchmarkDelayProxy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	cfg := DefaultDelayProxyConfig()
	cfg.Target, cfg.Delay = ln.Addr().String(), time.Millisecond
	p, err := StartDelayProxy(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 16<<10)
	b.SetBytes(int64(len(chunk)))
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(chunk)))
		done <- err
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil && !errors.Is(err, io.EOF) {
		b.Fatal(err)
	}
}
