package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	proxyproto "github.com/pires/go-proxyproto"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
)

// proxyListener is a test listener requiring PROXY headers from 127.0.0.1.
func proxyListener(t *testing.T, lim Limits, establish func(string, net.Conn) error, ws bool, tlsCfg *tls.Config) *testListener {
	t.Helper()
	tl := startTestListenerWith(t, lim, establish, func(l *listener) {
		l.proxy = &proxyPolicy{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
		l.websocket = ws
		l.tls = tlsCfg
	})
	return tl
}

// startTestListenerWith is startTestListener with the listener adjusted before it serves.
func startTestListenerWith(t *testing.T, lim Limits, establish func(string, net.Conn) error, adjust func(*listener)) *testListener {
	t.Helper()
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &testListener{addr: nl.Addr().String(), refusal: map[string]int{}}
	tl.listener = &listener{id: "test", l: nl, log: testenv.Logger(t),
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
	adjust(tl.listener)
	served := make(chan struct{})
	go func() { defer close(served); tl.Serve(establish) }()
	t.Cleanup(func() {
		tl.Close(nil)
		<-served
		tl.handlers.Wait()
	})
	return tl
}

func proxyHeader(t *testing.T, version byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version,
		&net.TCPAddr{IP: net.ParseIP(src), Port: 40000}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1883})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// remoteBroker is a fakeBroker that also reports the remote address mochi would see.
type remoteBroker struct {
	*fakeBroker
	remotes chan string
}

func newRemoteBroker() *remoteBroker {
	return &remoteBroker{fakeBroker: newFakeBroker(), remotes: make(chan string, 100)}
}

func (b *remoteBroker) establish(id string, c net.Conn) error {
	b.remotes <- c.RemoteAddr().String()
	return b.fakeBroker.establish(id, c)
}

func TestProxyHeaderGivesTheClientAddress(t *testing.T) {
	t.Parallel()
	for _, version := range []byte{1, 2} {
		fb := newRemoteBroker()
		tl := proxyListener(t, testLimits(), fb.establish, false, nil)
		c := dialFrom(t, "127.0.0.1", tl.addr)
		pk := minimalConnect("dev-1")
		if _, err := c.Write(append(proxyHeader(t, version, "203.0.113.7"), pk...)); err != nil {
			t.Fatal(err)
		}
		if got := <-fb.remotes; got != "203.0.113.7:40000" {
			t.Fatalf("v%d: the broker sees %s, want the header's 203.0.113.7:40000", version, got)
		}
		if got := <-fb.got; !bytes.Equal(got, pk) {
			t.Fatalf("v%d: broker read %x, want %x", version, got, pk)
		}
	}
}

func TestProxyRefusesUntrustedSourcesAndMissingHeaders(t *testing.T) {
	t.Parallel()
	fb := newFakeBroker()
	tl := proxyListener(t, testLimits(), fb.establish, false, nil)
	// Untrusted source, even with a header: closed at accept.
	c := dialFrom(t, "127.0.0.2", tl.addr)
	_, _ = c.Write(append(proxyHeader(t, 2, "203.0.113.7"), minimalConnect("dev-1")...))
	if took := closedWithin(t, c, 5*time.Second); took > 200*time.Millisecond {
		t.Fatalf("untrusted source closed after %v, want at once", took)
	}
	// Trusted source without a header.
	c = dialFrom(t, "127.0.0.1", tl.addr)
	_, _ = c.Write(minimalConnect("dev-1"))
	closedWithin(t, c, 5*time.Second)
	// Trusted source that sends nothing: closed by the connect deadline.
	dialed := time.Now() // the deadline runs from the accept, after this
	c = dialFrom(t, "127.0.0.1", tl.addr)
	if closedWithin(t, c, 5*time.Second); time.Since(dialed) < testLimits().ConnectTimeout {
		t.Fatalf("silent connection closed %v after the dial, before the 300ms connect timeout", time.Since(dialed))
	}
	waitCounts(t, tl, 0, 0)
	if tl.refusals("proxy_untrusted") != 1 || tl.refusals("proxy_header") != 1 || tl.refusals("connect_timeout") != 1 || fb.count() != 0 {
		t.Fatalf("refusals %v, CONNECTs handed over %d", tl.refusal, fb.count())
	}
}

func TestProxyPerAddressPendingLimitUsesTheHeaderAddress(t *testing.T) {
	t.Parallel()
	lim := testLimits()
	lim.MaxPendingPerIP = 2
	lim.ConnectTimeout = 5 * time.Second
	fb := newFakeBroker()
	tl := proxyListener(t, lim, fb.establish, false, nil)
	for range 2 {
		c := dialFrom(t, "127.0.0.1", tl.addr)
		if _, err := c.Write(proxyHeader(t, 2, "203.0.113.7")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		tl.pending.mu.Lock()
		defer tl.pending.mu.Unlock()
		if tl.pending.byIP["203.0.113.7"] != 2 {
			return io.ErrNoProgress
		}
		return nil
	})
	third := dialFrom(t, "127.0.0.1", tl.addr)
	_, _ = third.Write(proxyHeader(t, 2, "203.0.113.7"))
	closedWithin(t, third, 2*time.Second)
	// Another client behind the same proxy is not affected.
	other := dialFrom(t, "127.0.0.1", tl.addr)
	if _, err := other.Write(append(proxyHeader(t, 2, "198.51.100.1"), minimalConnect("dev-2")...)); err != nil {
		t.Fatal(err)
	}
	<-fb.got
	if n := tl.refusals("pending_connects_per_ip"); n != 1 {
		t.Fatalf("pending_connects_per_ip refusals %d, want 1", n)
	}
}

// TestPerIPExemptAddressesHaveNoShare: an address in Limits.PerIPExempt (a monitor's)
// keeps more connections pending than MaxPendingPerIP and is not rate limited, while
// another address is held to both.
func TestPerIPExemptAddressesHaveNoShare(t *testing.T) {
	t.Parallel()
	lim := testLimits()
	lim.MaxPendingPerIP = 1
	lim.ConnectTimeout = 5 * time.Second
	lim.PerIPExempt = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	fb := newFakeBroker()
	tl := proxyListener(t, lim, fb.establish, false, nil)
	for range 3 {
		c := dialFrom(t, "127.0.0.1", tl.addr)
		if _, err := c.Write(proxyHeader(t, 2, "198.51.100.9")); err != nil {
			t.Fatal(err)
		}
	}
	held := dialFrom(t, "127.0.0.1", tl.addr)
	if _, err := held.Write(proxyHeader(t, 2, "203.0.113.7")); err != nil {
		t.Fatal(err)
	}
	// The other address's share is taken before its second connection comes.
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		tl.pending.mu.Lock()
		defer tl.pending.mu.Unlock()
		if tl.pending.byIP["203.0.113.7"] != 1 || len(tl.pending.conns) != 4 {
			return io.ErrNoProgress
		}
		return nil
	})
	refused := dialFrom(t, "127.0.0.1", tl.addr)
	_, _ = refused.Write(proxyHeader(t, 2, "203.0.113.7"))
	closedWithin(t, refused, 2*time.Second)
	// The refused connection leaves the pending set just after it is closed.
	testenv.Eventually(t, 5*time.Second, 5*time.Millisecond, func() error {
		tl.pending.mu.Lock()
		pending, exempt := len(tl.pending.conns), tl.pending.byIP["198.51.100.9"]
		tl.pending.mu.Unlock()
		if pending != 4 || exempt != 0 {
			return fmt.Errorf("%d pending (want the 3 exempt and 1 other), %d counted for the exempt address (want 0)", pending, exempt)
		}
		return nil
	})
	if n := tl.refusals("pending_connects_per_ip"); n != 1 {
		t.Fatalf("pending_connects_per_ip refusals %d, want 1 (the second of the other address)", n)
	}
	r := newRateLimiter(1, 1, addrSet(lim.PerIPExempt))
	for i := range 5 {
		if !r.allow("198.51.100.9") {
			t.Fatalf("exempt address rate limited at connection %d", i+1)
		}
	}
	if !r.allow("203.0.113.7") || r.allow("203.0.113.7") {
		t.Fatal("another address: want its burst of 1 allowed, then refused")
	}
}

// wsDial opens a WebSocket to the test listener (with a PROXY header first when header is
// set) offering subprotocols.
func wsDial(t *testing.T, addr string, header []byte, tlsCfg *tls.Config, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	scheme := "ws"
	if tlsCfg != nil {
		scheme = "wss"
	}
	d := websocket.Dialer{
		Subprotocols:     subprotocols,
		HandshakeTimeout: 3 * time.Second,
		TLSClientConfig:  tlsCfg,
		NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err == nil && header != nil {
				_, err = c.Write(header)
			}
			return c, err
		},
	}
	c, resp, err := d.Dial(scheme+"://"+addr+"/mqtt", nil)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func TestWebSocketCarriesMQTTThroughTheLimits(t *testing.T) {
	t.Parallel()
	certs := testenv.GenerateCerts(t)
	srvTLS, err := tlsconf.Server(certs.ServerCert, certs.ServerKey, "")
	if err != nil {
		t.Fatal(err)
	}
	cliTLS, err := tlsconf.Client(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		srv  *tls.Config
		cli  *tls.Config
	}{{"ws", nil, nil}, {"wss", srvTLS, cliTLS}} {
		t.Run(tc.name, func(t *testing.T) {
			fb := newRemoteBroker()
			// Room for a handshake on a loaded machine: the limits under test are the others.
			limits := testLimits()
			limits.ConnectTimeout = 10 * time.Second
			tl := proxyListener(t, limits, fb.establish, true, tc.srv)
			c, resp, err := wsDial(t, tl.addr, proxyHeader(t, 1, "203.0.113.9"), tc.cli, "mqtt")
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			if c.Subprotocol() != "mqtt" {
				t.Fatalf("subprotocol %q, want mqtt", c.Subprotocol())
			}
			// The CONNECT split over two messages arrives whole.
			pk := minimalConnect("dev-ws")
			for _, part := range [][]byte{pk[:3], pk[3:]} {
				if err := c.WriteMessage(websocket.BinaryMessage, part); err != nil {
					t.Fatal(err)
				}
			}
			if got := <-fb.remotes; got != "203.0.113.9:40000" {
				t.Fatalf("the broker sees %s, want the PROXY header's address", got)
			}
			if got := <-fb.got; !bytes.Equal(got, pk) {
				t.Fatalf("broker read %x, want %x", got, pk)
			}
			typ, ack, err := c.ReadMessage()
			if err != nil || typ != websocket.BinaryMessage || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
				t.Fatalf("CONNACK: %d %x %v", typ, ack, err)
			}
		})
	}
}

func TestWebSocketRefusals(t *testing.T) {
	t.Parallel()
	lim := testLimits()
	lim.MaxConnectSize = 128
	fb := newFakeBroker()
	tl := startTestListenerWith(t, lim, fb.establish, func(l *listener) { l.websocket = true })
	// No MQTT subprotocol: 400.
	if _, resp, err := wsDial(t, tl.addr, nil, nil, "chat"); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("no mqtt subprotocol: %v %v, want 400", err, resp)
	}
	// A CONNECT larger than the limit: closed before its body.
	c, _, err := wsDial(t, tl.addr, nil, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{0x10, 0x80, 0x08}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
		t.Fatalf("oversized CONNECT over WebSocket: %v, want the connection closed", err)
	}
	// A text message: closed ([MQTT-6.0.0-1]).
	c, _, err = wsDial(t, tl.addr, nil, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, minimalConnect("dev-t")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
		t.Fatalf("text message: %v, want the connection closed", err)
	}
	// An upgrade that never comes: closed by the connect deadline.
	raw := dialFrom(t, "127.0.0.1", tl.addr)
	closedWithin(t, raw, 5*time.Second)
	waitCounts(t, tl, 0, 0)
	if tl.refusals("connect_size") != 1 || fb.count() != 0 {
		t.Fatalf("refusals %v, CONNECTs handed over %d", tl.refusal, fb.count())
	}
}

func TestFixPuback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want byte }{{0x01, 0}, {0x02, 0}, {0x00, 0}, {0x10, 0x10}, {0x87, 0x87}, {0x97, 0x97}} {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ReasonCode: tc.in,
			Properties: packets.Properties{User: []packets.UserProperty{{Key: "a", Val: "1"}}}}
		if got := fixPuback(pk); got.ReasonCode != tc.want {
			t.Fatalf("PUBACK %#x became %#x, want %#x", tc.in, got.ReasonCode, tc.want)
		}
	}
}

func TestSessionIdentsFollowTheSession(t *testing.T) {
	t.Parallel()
	s := newSessionIdents()
	a, err := auth.New(auth.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	ident, err := a.Authenticate("", nil, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	old, cur := &mqtt.Client{ID: "dev-1"}, &mqtt.Client{ID: "dev-1"}
	s.set(old, ident)
	s.set(cur, ident) // a new connection took the session over
	if s.get(old) != nil || s.get(cur) != ident {
		t.Fatal("the identity must follow the newest client of the session")
	}
	s.drop(old) // the old connection's end must not forget the new one's
	if s.get(cur) != ident {
		t.Fatal("dropping the old client forgot the new one")
	}
	s.drop(cur)
	if s.get(cur) != nil || len(s.m) != 0 {
		t.Fatal("not forgotten")
	}
}

func TestDollarSubscribed(t *testing.T) {
	t.Parallel()
	cl := &mqtt.Client{State: mqtt.ClientState{Subscriptions: mqtt.NewSubscriptions()}}
	sub := func(f string) { cl.State.Subscriptions.Add(f, packets.Subscription{Filter: f}) }
	sub("#")
	sub("+/retained")
	if dollarSubscribed(cl, "$rules/retained") {
		t.Fatal("# and +/retained must not match $rules/retained [MQTT-4.7.2-1]")
	}
	sub("$share/g/$rules/#")
	if !dollarSubscribed(cl, "$rules/retained") || dollarSubscribed(cl, "$other/retained") {
		t.Fatal("a shared $rules/# subscription matches $rules/retained only")
	}
	sub("$other/+")
	if !dollarSubscribed(cl, "$other/retained") {
		t.Fatal("$other/+ matches $other/retained")
	}
}
