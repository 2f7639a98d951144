package wire

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestRoundTripEachRequest(t *testing.T) {
	got := make(chan any, 3)
	h := &fakeHandler{
		deliver: func(_ context.Context, d Deliver) Result {
			got <- d
			return Result{Seq: 999, Status: StatusDelivered, Detail: "ok"}
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

	d := Deliver{Epoch: 5, Client: "dev-1", Session: "s-1", ID: "m-1", Topic: "a/b", Payload: []byte("hi"), QoS: 1, Expires: 1234}
	r, err := c.Deliver(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusDelivered || r.Detail != "ok" || r.Seq == 999 || r.Seq == 0 {
		t.Errorf("Deliver result %+v: want delivered, ok, and the request's Seq", r)
	}
	hd := (<-got).(Deliver)
	d.Seq = hd.Seq
	if !reflect.DeepEqual(hd, d) || hd.Seq != r.Seq {
		t.Errorf("handler got %+v, want %+v with Seq %d", hd, d, r.Seq)
	}

	k := Kick{Epoch: 6, Client: "dev-1", Session: "s-0"}
	r, err = c.Kick(ctx, k)
	if err != nil || r.Status != StatusNotHere {
		t.Errorf("Kick = %+v, %v", r, err)
	}
	hk := (<-got).(Kick)
	k.Seq = hk.Seq
	if hk != k || hk.Seq != r.Seq {
		t.Errorf("handler got %+v, want %+v", hk, k)
	}

	dr := Drain{Epoch: -1, Client: "dev-2"}
	r, err = c.Drain(ctx, dr)
	if err != nil || r.Status != StatusStaleEpoch || r.Detail != "epoch 3 is gone" {
		t.Errorf("Drain = %+v, %v", r, err)
	}
	hdr := (<-got).(Drain)
	dr.Seq = hdr.Seq
	if hdr != dr {
		t.Errorf("handler got %+v, want %+v", hdr, dr)
	}

	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v on a live Conn", c.Err())
	}
}

func TestInvalidRequestIsBadRequest(t *testing.T) {
	called := make(chan struct{}, 10)
	h := &fakeHandler{deliver: func(context.Context, Deliver) Result {
		called <- struct{}{}
		return Result{Status: StatusDelivered}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)
	for _, d := range []Deliver{
		{Client: "c", Topic: "t", QoS: 3},
		{Topic: "t"},
		{Client: "c"},
	} {
		r, err := c.Deliver(ctx, d)
		if err != nil || r.Status != StatusBadRequest || r.Detail == "" {
			t.Errorf("Deliver(%+v) = %+v, %v; want bad-request with a detail", d, r, err)
		}
	}
	if r, err := c.Kick(ctx, Kick{}); err != nil || r.Status != StatusBadRequest {
		t.Errorf("Kick without client = %+v, %v", r, err)
	}
	if r, err := c.Drain(ctx, Drain{}); err != nil || r.Status != StatusBadRequest {
		t.Errorf("Drain without client = %+v, %v", r, err)
	}
	if len(called) > 0 {
		t.Error("handler called for an invalid request")
	}
}

func TestSlowCallDoesNotBlockFastOne(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver) Result {
		if d.ID == "slow" {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return Result{Status: StatusDelivered, Detail: d.ID}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})
	ctx := testCtx(t)

	slow := make(chan Result, 1)
	go func() {
		r, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: "slow"})
		if err != nil {
			t.Errorf("slow Deliver: %v", err)
		}
		slow <- r
	}()
	<-entered
	r, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: "fast"})
	if err != nil || r.Detail != "fast" {
		t.Fatalf("fast Deliver = %+v, %v", r, err)
	}
	select {
	case <-slow:
		t.Fatal("slow Deliver finished before it was released")
	default:
	}
	close(release)
	if r := recvN(t, slow, 1)[0]; r.Detail != "slow" {
		t.Fatalf("slow Deliver = %+v", r)
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
	for g := range callers {
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
					r, err = c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: id})
				case 1:
					r, err = c.Kick(ctx, Kick{Client: "c", Session: id})
				case 2:
					r, err = c.Drain(ctx, Drain{Client: id})
				}
				if err != nil || r.Detail != id {
					t.Errorf("call %s = %+v, %v", id, r, err)
					return
				}
				mu.Lock()
				if seqs[r.Seq] {
					t.Errorf("Seq %d answered twice", r.Seq)
				}
				seqs[r.Seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seqs) != callers*calls {
		t.Fatalf("%d distinct results, want %d", len(seqs), callers*calls)
	}
}

func TestCanceledCallDiscardsLateResult(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	answered := make(chan struct{})
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver) Result {
		if d.ID == "late" {
			entered <- struct{}{}
			<-release
			defer close(answered)
		}
		return Result{Status: StatusDelivered, Detail: d.ID}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{})

	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: "late"})
		errc <- err
	}()
	<-entered
	cancel()
	if err := recvN(t, errc, 1)[0]; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Deliver returned %v, want context.Canceled", err)
	}
	close(release)
	<-answered
	// The late result is dropped; the next call gets its own.
	r, err := c.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t", ID: "next"})
	if err != nil || r.Detail != "next" {
		t.Fatalf("next Deliver = %+v, %v", r, err)
	}
	if _, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver with a done ctx returned %v", err)
	}
}

func TestConnCloseFailsPendingCalls(t *testing.T) {
	entered := make(chan struct{}, 10)
	handlerDone := make(chan error, 10)
	h := &fakeHandler{deliver: func(ctx context.Context, d Deliver) Result {
		entered <- struct{}{}
		<-ctx.Done() // the server cancels it when the connection closes
		handlerDone <- ctx.Err()
		return Result{Status: StatusFailed}
	}}
	ts := startServer(t, h, ServerOptions{})
	c, err := Dial(testCtx(t), ts.addr, DialOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t"})
			errc <- err
		}()
	}
	recvN(t, entered, 3)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, err := range recvN(t, errc, 3) {
		if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrConnLost) {
			t.Errorf("pending call returned %v, want ErrClosed and ErrConnLost", err)
		}
	}
	recvN(t, handlerDone, 3)
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v", c.Err())
	}
	if _, err := c.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Deliver after Close returned %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRequestTooLarge(t *testing.T) {
	ts := startServer(t, &fakeHandler{}, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{MaxFrame: 1024})
	ctx := testCtx(t)
	_, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", Payload: make([]byte, 2000)})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized Deliver returned %v, want ErrFrameTooLarge", err)
	}
	if r, err := c.Deliver(ctx, Deliver{Client: "c", Topic: "t", ID: "small", Payload: make([]byte, 900)}); err != nil || r.Detail != "small" {
		t.Fatalf("Deliver after an oversized one = %+v, %v", r, err)
	}
}

func TestResultTooLargeForClientLosesConn(t *testing.T) {
	h := &fakeHandler{deliver: func(context.Context, Deliver) Result {
		return Result{Status: StatusDelivered, Detail: strings.Repeat("x", 2000)}
	}}
	ts := startServer(t, h, ServerOptions{})
	c := dialT(t, ts.addr, DialOptions{MaxFrame: 1024})
	_, err := c.Deliver(testCtx(t), Deliver{Client: "c", Topic: "t"})
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Deliver = %v, want ErrConnLost caused by ErrFrameTooLarge", err)
	}
	<-c.Done()
}

func TestDialOptionsValidate(t *testing.T) {
	if err := DefaultDialOptions().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, o := range []DialOptions{{MaxFrame: -1}, {MaxFrame: maxMaxFrame + 1}, {DialTimeout: -1}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v valid", o)
		}
		if _, err := Dial(testCtx(t), "127.0.0.1:1", o); err == nil {
			t.Errorf("Dial accepted %+v", o)
		}
	}
	if err := DefaultServerOptions().Validate(); err != nil {
		t.Errorf("server defaults invalid: %v", err)
	}
	if err := (ServerOptions{MaxInflight: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "max inflight -1") {
		t.Errorf("negative MaxInflight: %v", err)
	}
}
