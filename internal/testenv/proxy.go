package testenv

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one server, for cutting one client's link
// to it for real while the server and everyone else stay up. A link can fail two ways: Cut
// refuses it (connections are closed, so both ends learn at once), Blackhole silences it
// (connections stay open and nothing passes, so each end learns only from its own timeouts,
// as behind a dead router or a dropped route).
type Proxy struct {
	Addr   string
	target string
	l      net.Listener

	mu     sync.Mutex
	cut    bool
	hole   bool
	marker []byte // MuteRepliesAfter's, until a link sends it
	links  map[*proxyLink]struct{}
	wg     sync.WaitGroup
}

// proxyLink is one client connection and, unless it was accepted into a blackhole, its
// connection to the server.
type proxyLink struct {
	client, server net.Conn // server is nil for a connection accepted into a blackhole
	holed          bool     // nothing passes; closed by Restore
	muted          bool     // the server's replies are dropped (MuteRepliesAfter)
}

func (l *proxyLink) close() {
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
}

// StartProxy forwards connections on a free loopback port to target until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, l: l, links: map[*proxyLink]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		if p.hole {
			// The kernel completed the handshake, as a server behind a blackhole would
			// seem to; nothing the client sends goes anywhere.
			link := &proxyLink{client: c, holed: true}
			p.links[link] = struct{}{}
			p.mu.Unlock()
			p.wg.Add(1)
			go p.pipe(link, nil, c)
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		link := &proxyLink{client: c, server: up}
		p.links[link] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(link, c, up)
		go p.pipe(link, up, c)
	}
}

// pipe copies src to dst (nil: nowhere) until src fails. On a healthy link it then closes
// both connections, as io.Copy followed by two Closes would. On a blackholed link it drops
// what it reads and, when src fails, keeps dst open: not even the end of a stream passes a
// blackhole.
func (p *Proxy) pipe(link *proxyLink, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	toServer := dst != nil && dst == link.server
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !p.holed(link) && (toServer || !p.muted(link)) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
			if toServer {
				p.sent(link, buf[:n])
			}
		}
		if err != nil {
			break
		}
	}
	if p.holed(link) {
		src.Close()
		return
	}
	link.close()
	p.mu.Lock()
	delete(p.links, link)
	p.mu.Unlock()
}

func (p *Proxy) muted(link *proxyLink) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return link.muted
}

// sent mutes link's replies if what its client just sent holds the marker.
func (p *Proxy) sent(link *proxyLink, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker != nil && bytes.Contains(b, p.marker) {
		link.muted, p.marker = true, nil
	}
}

// MuteRepliesAfter drops everything the server sends on the first link whose client sends
// marker, from the moment it has been passed on: a request that reaches the server and is
// carried out while its answer is lost, as when a link fails in between. Until Cut.
func (p *Proxy) MuteRepliesAfter(marker []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker = marker
}

func (p *Proxy) holed(link *proxyLink) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return link.holed
}

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for link := range p.links {
		link.close()
		delete(p.links, link)
	}
}

// Blackhole silences the link until Restore: open connections stay open but nothing passes
// in either direction, and new connections are accepted but go nowhere.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole = true
	for link := range p.links {
		link.holed = true
	}
}

// Restore lets connections through again. Connections that a blackhole swallowed are closed
// (bytes were lost in them, so they cannot carry on), which their clients see as a reset
// link and reconnect.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.hole = false, false
	for link := range p.links {
		if link.holed {
			link.close()
			delete(p.links, link)
		}
	}
}

// RefusedAddrs returns n distinct loopback addresses on which nothing listens (ports free a
// moment ago, released again): a dial to one is refused, like a server whose process is gone.
func RefusedAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // all held until every one is chosen, so that they differ
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// RefusedAddr is RefusedAddrs(t, 1)[0].
func RefusedAddr(t testing.TB) string { t.Helper(); return RefusedAddrs(t, 1)[0] }

// SilentAddr is a loopback address that accepts connections and never answers, like a
// frozen server or a host behind a dead route that still completes the handshake. The
// listener and every connection it took are closed when the test ends.
func SilentAddr(t testing.TB) string {
	t.Helper()
	return StartSilent(t).Addr
}

// Silent is the server behind SilentAddr, for a test that waits for its first connection.
type Silent struct {
	Addr string
	// Accepted is closed once the server has accepted a connection.
	Accepted <-chan struct{}
}

// StartSilent starts a SilentAddr server.
func StartSilent(t testing.TB) Silent {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done, accepted := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if conns = append(conns, c); len(conns) == 1 {
				close(accepted)
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return Silent{Addr: l.Addr().String(), Accepted: accepted}
}
