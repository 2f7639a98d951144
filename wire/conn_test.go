package wire

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTripEachRequest(t *testing.T) {
	got := make(chan any, 3)
	h := &fakeHandler{
		deliver: func(_ context.Context, d Deliver, reply func(int, Result)) {
			got <- d
			for i := range d.Msgs {
				reply(i, Result{Seq: 999, Status: StatusQueued, Detail: fmt.Sprint("ok ", i)})
			}
		},
		kick: func(_ context.Context, k Kick) Result {
			got <- k
			return Result{Status: StatusNotHere}
		},
		drain: func(_ context.Context, d Drain) Result {
			got <- d
			return Result{Status: StatusStaleEpoch, Detail: "epoch 3 is gone"}
		},
	}
	ts := startServer(t, h, ServerOptions{Token: "tok"})
	c := dialT(t, ts.addr, DialOptions{Token: "tok"})
	ctx := testCtx(t)

	d := Deliver{Epoch: 5, Client: "dev-1", Session: "s-1", MaxWait: 1500, Msgs: []Msg{
		{ID: "m-1", Topic: "a/b", Payload: []byte("hi"), QoS: 1, TTL: 1234, Receipt: true},
		{ID: "m-2", Topic: "a/c", QoS: 0, TTL: 0},
		{ID: "m-3", Topic: "a/b", Payload: []byte{0, 1}, QoS: 1, TTL: -1},
	}}
	out := deliverT(t, c, d)
	hd := (<-got).(Deliver)
	if hd.Seq == 0 {
		t.Fatal("the handler got Seq 0: the Conn did not set it")
	}
	d.Seq = hd.Seq
	if !reflect.DeepEqual(hd, d) {
		t.Errorf("handler got %+v, want %+v", hd, d)
	}
	for i, o := range out {
		if o.err != nil || o.r.Status != StatusQueued || o.r.Detail != fmt.Sprint("ok ", i) || o.r.Seq != d.Seq+uint64(i) {
			t.Errorf("message %d: %+v, %v; want queued with Seq %d", i, o.r, o.err, d.Seq+uint64(i))
		}
	}

	k := Kick{Epoch: 6, Client: "dev-1", Session: "s-0"}
	r, err := c.Kick(ctx, k)
	if err != nil || r.Status != StatusNotHere {
		t.Errorf("Kick = %+v, %v", r, err)
	}
	hk := (<-got).(Kick)
	k.Seq = hk.Seq
	if hk != k || hk.Seq != r.Seq || hk.Seq <= d.Seq+2 {
		t.Errorf("handler got %+v, want %+v with a Seq after the Deliver's", hk, k)
	}

	dr := Drain{Epoch: -1, Clients: []string{"dev-2", "dev-3"}}
	r, err = c.Drain(ctx, dr)
	if err != nil || r.Status != StatusStaleEpoch || r.Detail != "epoch 3 is gone" {
		t.Errorf("Drain = %+v, %v", r, err)
	}
	hdr := (<-got).(Drain)
	dr.Seq = hdr.Seq
	if !reflect.DeepEqual(hdr, dr) {
		t.Errorf("handler got %+v, want %+v", hdr, dr)
	}

	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v on a live Conn", c.Err())
	}
}

func TestDeliverManyMessagesAnyOrder(t *testing.T) {
	seqs := make(chan uint64, 1)
	h := &fakeHandler{deliver: func(_ context.Context, d Deliver, reply func(int, Result)) {
		seqs <- d.Seq
		order := rand.Perm(len(d.Msgs))
		go func() { // half from another goroutine, in a random order, after Deliver returns
			for _, i := range order[len(order)/2:] {
				reply(i, Result{Status: StatusDelivered, Detail: d.Msgs[i].ID})
			}
		}()
		for _, i := range order[:len(order)/2] {
			reply(i, Result{Status: StatusDelivered, Detail: d.Msgs[i].ID})
		}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%d", i)
	}
	out := deliverT(t, c, testDeliver(ids...))
	seq := <-seqs
	for i, o := range out {
		if o.err != nil || o.r.Seq != seq+uint64(i) || o.r.Detail != ids[i] || o.r.Status != StatusDelivered {
			t.Fatalf("message %d: %+v, %v; want delivered %s with Seq %d", i, o.r, o.err, ids[i], seq+uint64(i))
		}
	}
}

func TestRepliesBeforeAndAfterDeliverReturns(t *testing.T) {
	returned := make(chan struct{})
	var wg sync.WaitGroup
	h := &fakeHandler{deliver: func(_ context.Context, d Deliver, reply func(int, Result)) {
		defer close(returned)
		reply(0, Result{Status: StatusDelivered, Detail: "inline"}) // before Deliver returns
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-returned
			reply(2, Result{Status: StatusExpired, Detail: "after"})
			reply(1, Result{Status: StatusNotHere, Detail: "after"})
		}()
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	out := deliverT(t, c, testDeliver("a", "b", "c"))
	wg.Wait()
	for i, want := range []Result{
		{Status: StatusDelivered, Detail: "inline"},
		{Status: StatusNotHere, Detail: "after"},
		{Status: StatusExpired, Detail: "after"},
	} {
		if o := out[i]; o.err != nil || o.r.Status != want.Status || o.r.Detail != want.Detail {
			t.Errorf("message %d: %+v, %v; want %+v", i, o.r, o.err, want)
		}
	}
}

func TestInvalidRequestRefusedClientSide(t *testing.T) {
	called := make(chan struct{}, 10)
	h := &fakeHandler{
		deliver: func(context.Context, Deliver, func(int, Result)) { called <- struct{}{} },
		kick:    func(context.Context, Kick) Result { called <- struct{}{}; return Result{Status: StatusDelivered} },
		drain:   func(context.Context, Drain) Result { called <- struct{}{}; return Result{Status: StatusDelivered} },
	}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)
	noSession := testDeliver("a", "b")
	noSession.Session = ""
	noClient := testDeliver("a")
	noClient.Client = ""
	qos2 := testDeliver("a")
	qos2.Msgs[0].QoS = 2
	noTopic := testDeliver("a")
	noTopic.Msgs[0].Topic = ""
	tooMany := testDeliver()
	tooMany.Msgs = make([]Msg, MaxMsgs+1)
	for _, c2 := range []struct {
		name string
		d    Deliver
		want string
	}{
		{"no session", noSession, "empty session"},
		{"no client", noClient, "empty client id"},
		{"qos 2", qos2, "qos 2"},
		{"no topic", noTopic, "message 0: empty topic"},
		{"too many", tooMany, "10001 messages"},
	} {
		for i, o := range deliverT(t, c, c2.d) {
			if !errors.Is(o.err, ErrInvalid) || !strings.Contains(o.err.Error(), c2.want) {
				t.Errorf("%s: message %d: %v, want ErrInvalid mentioning %q", c2.name, i, o.err, c2.want)
				break
			}
		}
	}
	c.Deliver(testDeliver(), func(int, Result, error) { t.Error("done called for a Deliver without messages") })
	if _, err := c.Kick(ctx, Kick{Client: "c"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Kick without session: %v", err)
	}
	if _, err := c.Drain(ctx, Drain{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Drain without clients: %v", err)
	}
	if err := c.Ping(ctx); err != nil { // nothing invalid reached the server
		t.Fatal(err)
	}
	if len(called) > 0 {
		t.Error("handler called for an invalid request")
	}
}

func TestSlowMessageDoesNotBlockFastOne(t *testing.T) {
	held := make(chan heldDelivery, 1)
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver, reply func(int, Result)) {
		if d.Msgs[0].ID == "slow" {
			held <- heldDelivery{ctx: ctx, d: d, reply: reply}
			return
		}
		reply(0, Result{Status: StatusDelivered, Detail: d.Msgs[0].ID})
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})

	slow := newCollector(t, 1)
	c.Deliver(testDeliver("slow"), slow.done)
	hd := recvN(t, held, 1)[0]
	deliverOK(t, c, testDeliver("fast"))
	select {
	case <-slow.all:
		t.Fatal("slow Deliver finished before it was answered")
	default:
	}
	hd.answerAll()
	if o := slow.wait()[0]; o.err != nil || o.r.Detail != "slow" {
		t.Fatalf("slow Deliver = %+v, %v", o.r, o.err)
	}
}

func TestManyConcurrentCallers(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)
	const callers, calls = 50, 200
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = make(map[uint64]bool)
	)
	record := func(id string, r Result, err error) bool {
		if err != nil || r.Detail != id {
			t.Errorf("call %s = %+v, %v", id, r, err)
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if seqs[r.Seq] {
			t.Errorf("Seq %d answered twice", r.Seq)
		}
		seqs[r.Seq] = true
		return true
	}
	answers := 0
	for g := range callers {
		for i := range calls {
			if i%3 == 0 {
				answers += 2
			} else {
				answers++
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				id := fmt.Sprintf("%d-%d", g, i)
				var (
					r   Result
					err error
				)
				switch i % 3 {
				case 0:
					d := testDeliver(id+"a", id+"b")
					for j, o := range deliverT(t, c, d) {
						if !record(d.Msgs[j].ID, o.r, o.err) {
							return
						}
					}
					continue
				case 1:
					r, err = c.Kick(ctx, Kick{Client: "c", Session: id})
				case 2:
					r, err = c.Drain(ctx, Drain{Clients: []string{id}})
				}
				if !record(id, r, err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seqs) != answers {
		t.Fatalf("%d distinct results, want %d", len(seqs), answers)
	}
}

func TestCanceledCallDiscardsLateResult(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	p := startProxy(t, ts.addr)
	c := dialT(t, p.addr, DialOptions{})

	p.stall() // the Kick below is held on its way
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Kick(ctx, Kick{Client: "c", Session: "late"})
		errc <- err
	}()
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		if n := c.pendingLen(); n != 1 {
			return fmt.Errorf("%d calls pending, want the Kick", n)
		}
		return nil
	})
	cancel()
	if err := recvN(t, errc, 1)[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Kick returned %v, want context.Canceled", err)
	}
	if n := c.pendingLen(); n != 0 {
		t.Fatalf("%d calls still pending after the cancel", n)
	}
	p.resume()
	// The late result arrives before the Ping's pong, and is dropped.
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Kick(testCtx(t), Kick{Client: "c", Session: "next"}); err != nil || r.Detail != "next" {
		t.Fatalf("next Kick = %+v, %v", r, err)
	}
	if _, err := c.Kick(ctx, Kick{Client: "c", Session: "s"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Kick with a done ctx returned %v", err)
	}
}

// pendingLen is for tests: how many answers the Conn waits for.
func (c *Conn) pendingLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

func TestConnCloseFailsPendingCalls(t *testing.T) {
	held := make(chan heldDelivery, 10)
	ts := startServer(t, holdingHandler(held), ServerOptions{})
	c, err := Dial(testCtx(t), ts.addr, DialOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var cls []*collector
	for i := range 3 {
		cl := newCollector(t, 3)
		cls = append(cls, cl)
		c.Deliver(testDeliver(fmt.Sprint(i, "a"), fmt.Sprint(i, "b"), fmt.Sprint(i, "c")), cl.done)
	}
	hds := recvN(t, held, 3)
	hds[0].reply(1, Result{Status: StatusDelivered, Detail: "answered"})
	checkFor(t, 10*time.Second, time.Millisecond, func() error {
		if n := c.pendingLen(); n != 8 {
			return fmt.Errorf("%d messages pending, want 8", n)
		}
		return nil
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for n, cl := range cls {
		for i, o := range cl.wait() {
			if n == 0 && i == 1 {
				if o.err != nil || o.r.Detail != "answered" {
					t.Errorf("the message answered before Close: %+v, %v", o.r, o.err)
				}
				continue
			}
			if !errors.Is(o.err, ErrClosed) || !errors.Is(o.err, ErrConnLost) {
				t.Errorf("pending message %d of Deliver %d: %v, want ErrClosed and ErrConnLost", i, n, o.err)
			}
		}
	}
	for _, hd := range hds {
		select {
		case <-hd.ctx.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("handler context still live after the client closed")
		}
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v", c.Err())
	}
	if o := deliverT(t, c, testDeliver("after")); !errors.Is(o[0].err, ErrClosed) {
		t.Errorf("Deliver after Close: %v", o[0].err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRequestTooLarge(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{MaxFrame: 1024})
	big := testDeliver("a", "b")
	big.Msgs[1].Payload = make([]byte, 2000)
	for i, o := range deliverT(t, c, big) {
		if !errors.Is(o.err, ErrFrameTooLarge) {
			t.Fatalf("message %d of an oversized Deliver: %v, want ErrFrameTooLarge", i, o.err)
		}
	}
	if _, err := c.Drain(testCtx(t), Drain{Clients: []string{strings.Repeat("x", 2000)}}); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized Drain: %v, want ErrFrameTooLarge", err)
	}
	small := testDeliver("small")
	small.Msgs[0].Payload = make([]byte, 900)
	deliverOK(t, c, small)
}

func TestResultTooLargeForClientLosesConn(t *testing.T) {
	h := &fakeHandler{deliver: func(_ context.Context, _ Deliver, reply func(int, Result)) {
		reply(0, Result{Status: StatusDelivered, Detail: strings.Repeat("x", 2000)})
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{MaxFrame: 1024})
	o := deliverT(t, c, testDeliver("a"))[0]
	if !errors.Is(o.err, ErrConnLost) || !errors.Is(o.err, ErrFrameTooLarge) {
		t.Fatalf("Deliver = %v, want ErrConnLost caused by ErrFrameTooLarge", o.err)
	}
	<-c.Done()
}

// A link that goes silent without breaking, as when a peer is stopped or a cable cut, is
// declared lost by both ends within their IdleTimeout; heartbeats keep an idle one alive.
func TestSilentLinkDetectedByBothEnds(t *testing.T) {
	const (
		ping = 50 * time.Millisecond
		idle = 500 * time.Millisecond
		late = time.Second // scheduling slack on a loaded machine
	)
	held := make(chan heldDelivery, 1)
	ts := startServer(t, holdingHandler(held), ServerOptions{IdleTimeout: idle})
	p := startProxy(t, ts.addr)
	c := dialT(t, p.addr, DialOptions{PingInterval: ping, IdleTimeout: idle})

	cl := newCollector(t, 2)
	c.Deliver(testDeliver("a", "b"), cl.done)
	hd := recvN(t, held, 1)[0]
	// Nothing but heartbeats for several idle timeouts: both ends must keep the link.
	select {
	case <-c.Done():
		t.Fatalf("an idle but healthy link was declared lost: %v", c.Err())
	case <-hd.ctx.Done():
		t.Fatal("the server closed an idle but healthy link")
	case <-time.After(4 * idle):
	}

	p.stall()
	start := time.Now()
	for i, o := range cl.wait() {
		if !errors.Is(o.err, ErrConnLost) || !strings.Contains(o.err.Error(), "nothing received for 500ms") {
			t.Errorf("message %d pending on the silent link: %v, want ErrConnLost for silence", i, o.err)
		}
	}
	if d := time.Since(start); d > idle+late || d < idle/2 {
		t.Errorf("the client declared the link lost %v after it went silent, want about %v", d, idle)
	}
	select {
	case <-hd.ctx.Done():
	case <-time.After(idle + late):
		t.Fatal("the server did not declare the silent link lost")
	}
	if d := time.Since(start); d > idle+late {
		t.Errorf("the server declared the link lost %v after it went silent, want about %v", d, idle)
	}
}

func TestDialOptionsValidate(t *testing.T) {
	if err := DefaultDialOptions().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, c := range []struct {
		o    DialOptions
		want string
	}{
		{DialOptions{MaxFrame: -1}, "max frame -1"},
		{DialOptions{MaxFrame: maxMaxFrame + 1}, "max frame"},
		{DialOptions{DialTimeout: -1}, "dial timeout"},
		{DialOptions{PingInterval: -1}, "ping interval -1ns"},
		{DialOptions{IdleTimeout: -1}, "idle timeout -1ns"},
		{DialOptions{IdleTimeout: 500 * time.Millisecond}, "ping interval 1s: must be shorter than the idle timeout 500ms"},
		{DialOptions{PingInterval: 5 * time.Second}, "ping interval 5s: must be shorter"},
	} {
		if err := c.o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", c.o, err, c.want)
		}
		if _, err := Dial(testCtx(t), "127.0.0.1:1", c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Dial accepted %+v: %v", c.o, err)
		}
	}
	d := (DialOptions{}).withDefaults()
	if d.PingInterval != time.Second || d.IdleTimeout != 5*time.Second {
		t.Errorf("defaults %+v", d)
	}
}
