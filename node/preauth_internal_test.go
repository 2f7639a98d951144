package node

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
)

func TestReadConnectHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		max  uint32
		want []byte
		err  error
	}{
		{"small", []byte{0x10, 0x0c, 0, 4}, 1000, []byte{0x10, 0x0c}, nil},
		{"two-byte length at the limit", []byte{0x10, 0xe8, 0x07}, 1000, []byte{0x10, 0xe8, 0x07}, nil},
		{"two-byte length above the limit", []byte{0x10, 0xe9, 0x07}, 1000, nil, errConnectTooLarge},
		{"declared 1 MiB", []byte{0x10, 0x80, 0x80, 0x40}, 64 << 10, nil, errConnectTooLarge},
		{"refused before the length is complete", []byte{0x10, 0xff, 0xff}, 1000, nil, errConnectTooLarge},
		{"four-byte length", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, 1 << 28, []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, nil},
		{"non-minimal zero", []byte{0x10, 0x80, 0x80, 0x80, 0x00}, 10, []byte{0x10, 0x80, 0x80, 0x80, 0x00}, nil},
		{"five-byte length", []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01}, 1 << 28, nil, errMalformedLength},
		{"PUBLISH first", []byte{0x30, 2, 0, 0}, 1000, nil, errNotConnect},
		{"CONNECT with reserved flags", []byte{0x11, 2}, 1000, nil, errNotConnect},
		{"truncated", []byte{0x10, 0x80}, 1000, nil, io.ErrUnexpectedEOF},
		{"empty", nil, 1000, nil, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			got, _, err := readConnectHeader(r, tc.max)
			if !errors.Is(err, tc.err) || !bytes.Equal(got, tc.want) {
				t.Fatalf("readConnectHeader(%x) = %x, %v; want %x, %v", tc.in, got, err, tc.want, tc.err)
			}
			if err == nil {
				// mochi decodes the same length from the same bytes.
				fh := new(packets.FixedHeader)
				if err := fh.Decode(got[0]); err != nil {
					t.Fatal(err)
				}
				n, _, err := packets.DecodeLength(bytes.NewReader(got[1:]))
				if err != nil || uint32(n) > tc.max {
					t.Fatalf("mochi decodes %x as %d, %v", got[1:], n, err)
				}
				if r.Len() != len(tc.in)-len(got) {
					t.Fatalf("read %d bytes past the header", len(tc.in)-len(got)-r.Len())
				}
			}
		})
	}
}

// fakeBroker stands in for mochi's EstablishFn: it reads the CONNECT as mochi does (fixed
// header, then the declared body), answers CONNACK, clears the deadline as mochi's
// keepalive 0 does, and holds the connection until the client closes it.
type fakeBroker struct {
	mu       sync.Mutex
	connects [][]byte
	got      chan []byte
}

func newFakeBroker() *fakeBroker { return &fakeBroker{got: make(chan []byte, 100)} }

func (f *fakeBroker) establish(_ string, c net.Conn) error {
	br := bufio.NewReader(c)
	first, err := br.ReadByte()
	if err != nil {
		return err
	}
	defer c.Close() // as mochi's attachClient does, however it returns
	n, _, err := packets.DecodeLength(br)
	if err != nil {
		return err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return err
	}
	pk := append(append([]byte{first}, encodeLength(n)...), body...)
	f.mu.Lock()
	f.connects = append(f.connects, pk)
	f.mu.Unlock()
	f.got <- pk
	if _, err := c.Write([]byte{0x20, 2, 0, 0}); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Time{})
	_, err = io.Copy(io.Discard, br)
	return err
}

func encodeLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

func (f *fakeBroker) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.connects)
}

// testListener is a listener with lim's pre-authentication limits on 127.0.0.1, serving
// establish; refusals are counted by limit.
type testListener struct {
	*listener
	addr    string
	mu      sync.Mutex
	refusal map[string]int
}

func startTestListener(t *testing.T, lim Limits, tlsCfg *tls.Config, establish func(string, net.Conn) error) *testListener {
	t.Helper()
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &testListener{addr: nl.Addr().String(), refusal: map[string]int{}}
	if tlsCfg != nil {
		nl = tls.NewListener(nl, tlsCfg)
	}
	tl.listener = &listener{id: "test", l: nl, log: slog.New(slog.DiscardHandler),
		onPanic: func(net.Conn, any) {}, onEnd: func(error) {}, closeAll: func() {},
		refused: func(limit string) {
			tl.mu.Lock()
			tl.refusal[limit]++
			tl.mu.Unlock()
		},
		pending:        newPendingSet(lim.MaxPending, lim.MaxPendingPerIP, lim.MaxClients+int64(lim.MaxPending), addrSet(lim.PerIPExempt)),
		connectTimeout: lim.ConnectTimeout,
		maxConnect:     lim.MaxConnectSize,
		auth:           newAuthGuard(1, 0, nil),
	}
	served := make(chan struct{})
	go func() { defer close(served); tl.Serve(establish) }()
	t.Cleanup(func() {
		tl.Close(nil)
		<-served
		tl.handlers.Wait()
	})
	return tl
}

func (tl *testListener) refusals(limit string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.refusal[limit]
}

func testLimits() Limits {
	l := DefaultConfig().Limits
	l.ConnectTimeout = 300 * time.Millisecond
	return l
}

// dialFrom opens a TCP connection to addr from the loopback address src (any 127/8
// address is local on Linux), closed at cleanup.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads from c until the peer closes it and reports how long that took; it
// fails the test if the connection is still open after d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
	return time.Since(start)
}

func minimalConnect(id string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 0, 0, byte(len(id))}
	return append([]byte{0x10, byte(len(body) + len(id))}, append(body, id...)...)
}

func waitCounts(t *testing.T, tl *testListener, pending int, open int64) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		if p, o := tl.pending.counts(); p != pending || o != open {
			return errors.New("pending/open not reached")
		}
		return nil
	})
}

func TestListenerClosesSilentConnectionsAfterTheConnectTimeout(t *testing.T) {
	t.Parallel()
	fb := newFakeBroker()
	tl := startTestListener(t, testLimits(), nil, fb.establish)
	dialed := time.Now() // the deadline runs from the accept, after this
	c := dialFrom(t, "127.0.0.1", tl.addr)
	if closedWithin(t, c, 5*time.Second); time.Since(dialed) < testLimits().ConnectTimeout {
		t.Fatalf("closed %v after the dial, before the 300ms connect timeout", time.Since(dialed))
	}
	// A CONNECT whose body stops half-way is closed by the same deadline (inside mochi).
	c = dialFrom(t, "127.0.0.1", tl.addr)
	if _, err := c.Write(minimalConnect("half")[:6]); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, c, 5*time.Second)
	waitCounts(t, tl, 0, 0)
	if n := tl.refusals("connect_timeout"); n != 2 || fb.count() != 0 {
		t.Fatalf("connect_timeout refusals %d, CONNECTs handed over %d; want 2 and 0", n, fb.count())
	}
}

func TestListenerPassesTheConnectThroughAndTheDeadlineEndsWithIt(t *testing.T) {
	t.Parallel()
	fb := newFakeBroker()
	tl := startTestListener(t, testLimits(), nil, fb.establish)
	c := dialFrom(t, "127.0.0.1", tl.addr)
	pk := minimalConnect("dev-1")
	if _, err := c.Write(pk); err != nil {
		t.Fatal(err)
	}
	if got := <-fb.got; !bytes.Equal(got, pk) {
		t.Fatalf("broker read %x, want %x", got, pk)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		t.Fatal(err)
	}
	// Answered: no longer pending, and the broker's deadline (none) replaced ours.
	waitCounts(t, tl, 0, 1)
	_ = c.SetReadDeadline(time.Now().Add(3 * tl.connectTimeout))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after CONNACK: %v; want our own read deadline (the connection kept open past the connect timeout)", err)
	}
	c.Close()
	waitCounts(t, tl, 0, 0)
}

func TestListenerRefusesALargeConnectAtOnce(t *testing.T) {
	t.Parallel()
	fb := newFakeBroker()
	lim := testLimits()
	lim.ConnectTimeout = 10 * time.Second
	tl := startTestListener(t, lim, nil, fb.establish)
	for _, hdr := range [][]byte{
		{0x10, 0x80, 0x80, 0x40},       // 1 MiB declared
		{0x10, 0x81, 0x80, 0x04},       // 64 KiB + 1
		{0x10, 0xff, 0xff, 0xff, 0x7f}, // 256 MiB
	} {
		c := dialFrom(t, "127.0.0.1", tl.addr)
		if _, err := c.Write(append(hdr, 0, 4, 'M', 'Q')); err != nil {
			t.Fatal(err)
		}
		if took := closedWithin(t, c, 2*time.Second); took > time.Second {
			t.Fatalf("header %x: closed after %v", hdr, took)
		}
	}
	// Not a CONNECT: closed at once too (not a limit).
	c := dialFrom(t, "127.0.0.1", tl.addr)
	if _, err := c.Write([]byte{0x30, 2, 0, 0}); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, c, 2*time.Second)
	// At the limit: handed over.
	c = dialFrom(t, "127.0.0.1", tl.addr)
	body := append(minimalConnect("x")[2:], make([]byte, 64<<10)...)[:64<<10]
	if _, err := c.Write(append([]byte{0x10, 0x80, 0x80, 0x04}, body...)); err != nil {
		t.Fatal(err)
	}
	if got := <-fb.got; len(got) != 4+64<<10 {
		t.Fatalf("broker read %d bytes", len(got))
	}
	if n := tl.refusals("connect_size"); n != 3 || fb.count() != 1 {
		t.Fatalf("connect_size refusals %d, handed over %d; want 3 and 1", n, fb.count())
	}
}

func TestListenerPendingCaps(t *testing.T) {
	t.Parallel()
	fb := newFakeBroker()
	lim := testLimits()
	lim.ConnectTimeout = 10 * time.Second
	lim.MaxPending, lim.MaxPendingPerIP, lim.MaxClients = 4, 2, 1
	tl := startTestListener(t, lim, nil, fb.establish)

	// One client authenticated (answered): open, no longer pending.
	ok := dialFrom(t, "127.0.0.1", tl.addr)
	if _, err := ok.Write(minimalConnect("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(ok, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, tl, 0, 1)

	// Per address: two pending from 127.0.0.2, the third closed at once.
	for i := 0; i < 2; i++ {
		dialFrom(t, "127.0.0.2", tl.addr)
	}
	waitCounts(t, tl, 2, 3)
	closedWithin(t, dialFrom(t, "127.0.0.2", tl.addr), time.Second)
	if n := tl.refusals("pending_connects_per_ip"); n != 1 {
		t.Fatalf("pending_connects_per_ip refusals %d, want 1", n)
	}
	// In all: two more from other addresses fill the four slots; a fifth is closed at once.
	dialFrom(t, "127.0.0.3", tl.addr)
	dialFrom(t, "127.0.0.4", tl.addr)
	waitCounts(t, tl, 4, 5)
	closedWithin(t, dialFrom(t, "127.0.0.5", tl.addr), time.Second)
	if n := tl.refusals("pending_connects"); n != 1 {
		t.Fatalf("pending_connects refusals %d, want 1", n)
	}
	ok.Close()
	waitCounts(t, tl, 4, 4)
	// Close ends the pending connections at once (mochi does not know them).
	start := time.Now()
	tl.Close(nil)
	tl.handlers.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %v with pending connections", d)
	}
}

func TestListenerOpenCap(t *testing.T) {
	t.Parallel()
	fb := newFakeBroker()
	lim := testLimits()
	lim.ConnectTimeout = 10 * time.Second
	lim.MaxPending, lim.MaxPendingPerIP, lim.MaxClients = 2, 0, 1
	tl := startTestListener(t, lim, nil, fb.establish)
	for i := 0; i < 3; i++ { // three answered: beyond MaxClients, within MaxClients+MaxPending
		c := dialFrom(t, "127.0.0.1", tl.addr)
		if _, err := c.Write(minimalConnect("c")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
	}
	waitCounts(t, tl, 0, 3)
	closedWithin(t, dialFrom(t, "127.0.0.1", tl.addr), time.Second)
	if n := tl.refusals("max_clients"); n != 1 {
		t.Fatalf("max_clients refusals %d, want 1", n)
	}
}

func TestListenerTLSHandshakeDeadline(t *testing.T) {
	t.Parallel()
	certs := testenv.GenerateCerts(t)
	srv, err := tlsconf.Server(certs.ServerCert, certs.ServerKey, "")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsconf.Client(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.ServerName = "localhost"
	fb := newFakeBroker()
	tl := startTestListener(t, testLimits(), srv, fb.establish)
	// TCP only, no ClientHello: closed after the timeout.
	dialed := time.Now() // the deadline runs from the accept, after this
	raw := dialFrom(t, "127.0.0.1", tl.addr)
	if closedWithin(t, raw, 5*time.Second); time.Since(dialed) < testLimits().ConnectTimeout {
		t.Fatalf("closed %v after the dial, before the connect timeout", time.Since(dialed))
	}
	// Handshake done, then silence: closed by the same deadline.
	tc := tls.Client(dialFrom(t, "127.0.0.1", tl.addr), cli)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, tc, 5*time.Second)
	// A real client gets through (on a listener whose timeout leaves a loaded machine room
	// for the handshake).
	roomy := testLimits()
	roomy.ConnectTimeout = 10 * time.Second
	tc = tls.Client(dialFrom(t, "127.0.0.1", startTestListener(t, roomy, srv, fb.establish).addr), cli)
	pk := minimalConnect("tls-ok")
	if _, err := tc.Write(pk); err != nil {
		t.Fatal(err)
	}
	if got := <-fb.got; !bytes.Equal(got, pk) {
		t.Fatalf("broker read %x", got)
	}
	if n := tl.refusals("connect_timeout"); n != 2 {
		t.Fatalf("connect_timeout refusals %d, want 2", n)
	}
}
