package router_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/coord/coordtest"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/wire"
)

// slowNode answers every delivery as delivered, after a delay.
type slowNode struct{ delay time.Duration }

func (s slowNode) Deliver(_ context.Context, d wire.Deliver, reply func(int, wire.Result)) {
	go func() {
		time.Sleep(s.delay)
		for i := range d.Msgs {
			reply(i, wire.Result{Status: wire.StatusDelivered})
		}
	}()
}
func (slowNode) Kick(_ context.Context, k wire.Kick) wire.Result {
	return wire.Result{Seq: k.Seq, Status: wire.StatusDelivered}
}
func (slowNode) Drain(_ context.Context, d wire.Drain) wire.Result {
	return wire.Result{Seq: d.Seq, Status: wire.StatusDelivered}
}

// TestAnswerOutlastsReadTimeout: the read timeout bounds reading a request, not waiting
// for its answer. A read deadline that passed while the handler waits would cancel the
// request's context (Go's server watches the connection for a close); Go lifts it once the
// body is read, so a message whose client acknowledges after the read timeout is answered
// delivered, on a server built by HTTPServer.
func TestAnswerOutlastsReadTimeout(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	cl := newCluster(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := wire.NewServer(slowNode{delay: 800 * time.Millisecond}, wire.ServerOptions{})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	m := coordtest.NewMember("slow")
	m.InternalAddr = l.Addr().String()
	ctx := testenv.Context(t, 30*time.Second)
	reg, err := cl.c.Register(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := reg.Status()
	waitLive(t, cl.w, "slow", status.Epoch)
	if _, err := st.Connect(ctx, store.Presence{Client: "c", Node: "slow", Epoch: status.Epoch, Session: "s", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, st, cl.w, func(c *router.Config) {
		c.HTTP.ReadHeaderTimeout = 200 * time.Millisecond
		c.HTTP.ReadTimeout = 300 * time.Millisecond
	})
	hs := r.HTTPServer(r.Handler())
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(al) }()
	t.Cleanup(func() { hs.Close() })

	start := time.Now()
	resp, err := http.Post("http://"+al.Addr().String()+"/v1/messages", "application/json",
		strings.NewReader(`{"to":"c","payload":"x","max_wait":"2s"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res router.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if resp.StatusCode != 200 || res.Status != router.Delivered {
		t.Fatalf("answer after %v: %d %+v, want delivered (the read timeout is 300ms, the node answers after 800ms)", took, resp.StatusCode, res)
	}
	t.Logf("MEASURED answered delivered after %v with a read timeout of 300ms", took.Round(time.Millisecond))
}

// TestHTTPConfigValidate: the derived write timeout covers the longest answer, and a
// shorter one given explicitly is refused naming the field.
func TestHTTPConfigValidate(t *testing.T) {
	t.Parallel()
	c := router.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	longest := c.LongestAnswer()
	if longest < c.MaxMaxWait+c.AnswerGrace {
		t.Fatalf("longest answer %v is under max max wait %v + answer grace %v", longest, c.MaxMaxWait, c.AnswerGrace)
	}
	f := newFixture(t, nil)
	want := c.HTTP.ReadTimeout + longest + router.WriteMargin
	if ws := f.r.HTTPServer(http.NotFoundHandler()).WriteTimeout; ws != want {
		t.Fatalf("derived write timeout %v, want %v", ws, want)
	}
	t.Logf("MEASURED longest answer %v, derived write timeout %v at the defaults", longest, want)
	c.HTTP.WriteTimeout = longest - time.Second
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "HTTP.WriteTimeout") {
		t.Fatalf("write timeout under the longest answer: %v", err)
	}
	c.HTTP.WriteTimeout = longest
	if err := c.Validate(); err != nil {
		t.Fatalf("write timeout = longest answer: %v", err)
	}
}
