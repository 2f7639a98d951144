package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// sampleFrames has at least one frame of each type, with edge values.
func sampleFrames() map[string]Frame {
	return map[string]Frame{
		"hello":         Hello{Version: ProtocolVersion, Token: "secret"},
		"hello-notoken": Hello{Version: ProtocolVersion},
		"hello-v1":      Hello{Version: 1, Token: "secret"},
		"hello-ok":      HelloOK{Version: ProtocolVersion},
		"reject":        Reject{Reason: "bad token"},
		"deliver": Deliver{Seq: 1, Epoch: 1 << 40, Client: "dev-1", Session: "s-9", MaxWait: 2000, Msgs: []Msg{
			{ID: "m-1", Topic: "a/b", Payload: []byte("hello"), QoS: 1, TTL: 60_000},
		}},
		"deliver-many": Deliver{Seq: 1000, Epoch: 3, Client: "dev-2", Session: "s-2", Msgs: []Msg{
			{ID: "m-1", Topic: "a/b", Payload: []byte("one"), QoS: 1, TTL: 1},
			{ID: "m-2", Topic: "a/c", QoS: 0, TTL: 0},
			{ID: "m-3", Topic: "a/b", Payload: []byte{0}, QoS: 1, TTL: -5},
		}},
		"deliver-min": Deliver{Client: "c", Session: "s"},
		"deliver-receipt": Deliver{Seq: 2, Epoch: 1, Client: "dev-3", Session: "s-3", Msgs: []Msg{
			{ID: "r-1", Topic: "a/b", Payload: []byte("x"), QoS: 1, TTL: 60_000, Receipt: true},
			{ID: "r-2", Topic: "a/b", QoS: 0, TTL: 1, Receipt: true},
			{ID: "r-3", Topic: "a/b", QoS: 1, TTL: 1},
			{ID: "r-4", Topic: "a/b", QoS: 0x7f, Receipt: true},
		}},
		"deliver-edges": Deliver{Seq: math.MaxUint64, Epoch: math.MinInt64, Client: "ü", MaxWait: math.MaxUint32, Msgs: []Msg{
			{Payload: []byte{0, 0xff}, QoS: 2, TTL: math.MinInt64},
			{ID: "x", TTL: math.MaxInt64},
		}},
		"kick":           Kick{Seq: 300, Epoch: 7, Client: "dev-1", Session: "s-1"},
		"drain":          Drain{Seq: 2, Epoch: math.MaxInt64, Clients: []string{"dev-2"}},
		"drain-many":     Drain{Seq: 3, Epoch: -1, Clients: []string{"a", "", "dev-ü"}},
		"drain-none":     Drain{Seq: 4},
		"result":         Result{Seq: 1, Status: StatusDelivered},
		"result-queued":  Result{Seq: 2, Status: StatusQueued, Detail: "max wait"},
		"result-detail":  Result{Seq: 128, Status: StatusFailed, Detail: "handler panic: boom"},
		"result-unknown": Result{Seq: 5, Status: 200},
		"ping":           Ping{Seq: 9},
		"ping-heartbeat": Ping{},
		"pong":           Pong{Seq: 1 << 63},
		"forward": Forward{Seq: 7, From: "node-1", Epoch: 42, Items: []Item{
			{Kind: 1, Body: []byte("routes")}, {Kind: 2}, {Kind: 255, Body: []byte{0}},
		}},
		"forward-none": Forward{From: "n"},
	}
}

// body strips the length header from a frame, checking it.
func body(t testing.TB, frame []byte) []byte {
	t.Helper()
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
		t.Fatalf("header says %d bytes, body has %d", n, len(frame)-4)
	}
	return frame[4:]
}

func TestFrameRoundTrip(t *testing.T) {
	for name, f := range sampleFrames() {
		t.Run(name, func(t *testing.T) {
			frame := AppendFrame([]byte("prefix"), f)
			if !bytes.HasPrefix(frame, []byte("prefix")) {
				t.Fatal("AppendFrame clobbered dst")
			}
			b := body(t, frame[len("prefix"):])
			got, err := DecodeFrame(b)
			if err != nil {
				t.Fatalf("DecodeFrame: %v", err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("decoded %#v, want %#v", got, f)
			}
			if again := AppendFrame(nil, got); !bytes.Equal(again[4:], b) {
				t.Fatalf("re-encoded %x, want %x", again[4:], b)
			}
		})
	}
}

func TestDeliverEncoding(t *testing.T) {
	d := Deliver{Seq: 1, Epoch: -1, Client: "c", Session: "s", MaxWait: 300, Msgs: []Msg{{ID: "i", Topic: "t", Payload: []byte("p"), QoS: 1, TTL: 2}}}
	want := []byte{
		typeDeliver,
		1,      // seq
		1,      // epoch -1, zigzag
		1, 'c', // client
		1, 's', // session
		0xac, 0x02, // max wait 300
		1,                      // one message
		1, 'i', 1, 't', 1, 'p', // id, topic, payload
		1, // qos
		4, // ttl 2, zigzag
	}
	if got := body(t, AppendFrame(nil, d)); !bytes.Equal(got, want) {
		t.Fatalf("encoded %x, want %x", got, want)
	}
	// The receipt flag is the QoS byte's top bit; a QoS that does not fit the other seven
	// is sent as 0x7f, which the server refuses, never as a valid QoS or a receipt.
	for _, c := range []struct {
		qos     byte
		receipt bool
		want    byte
	}{{0, true, 0x80}, {1, true, 0x81}, {1, false, 0x01}, {0x80, false, 0x7f}, {0xff, true, 0xff}} {
		d.Msgs[0].QoS, d.Msgs[0].Receipt = c.qos, c.receipt
		b := body(t, AppendFrame(nil, d))
		if got := b[len(b)-2]; got != c.want {
			t.Errorf("qos %d receipt %v: qos byte %#x, want %#x", c.qos, c.receipt, got, c.want)
		}
	}
	dr := Drain{Seq: 5, Epoch: 1, Clients: []string{"a", "bc"}}
	want = []byte{typeDrain, 5, 2, 2, 1, 'a', 2, 'b', 'c'}
	if got := body(t, AppendFrame(nil, dr)); !bytes.Equal(got, want) {
		t.Fatalf("encoded %x, want %x", got, want)
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	b := body(t, AppendFrame(nil, Deliver{Client: "c", Session: "s", Msgs: []Msg{{ID: "i", Topic: "t", Payload: []byte("pay")}}}))
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	db := body(t, AppendFrame(nil, Drain{Clients: []string{"x", "y"}}))
	fd, err := DecodeFrame(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{b, db} {
		for i := range b {
			b[i] = 'z'
		}
	}
	if d := f.(Deliver); string(d.Msgs[0].Payload) != "pay" || d.Client != "c" || d.Msgs[0].ID != "i" {
		t.Fatalf("decoded frame changed with its input: %#v", d)
	}
	if d := fd.(Drain); d.Clients[0] != "x" || d.Clients[1] != "y" {
		t.Fatalf("decoded frame changed with its input: %#v", d)
	}
}

// Payloads share one buffer; appending to one must not overwrite the next.
func TestDecodedPayloadsDoNotOverlap(t *testing.T) {
	b := body(t, AppendFrame(nil, testDeliver("a", "b")))
	d, err := decodeDeliver(b[1:])
	if err != nil {
		t.Fatal(err)
	}
	_ = append(d.Msgs[0].Payload, "XXXX"...)
	if string(d.Msgs[1].Payload) != "p-b" {
		t.Fatalf("second payload %q after appending to the first", d.Msgs[1].Payload)
	}
}

func TestDecodeDeliverAllocs(t *testing.T) {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("msg-%03d", i)
	}
	b := body(t, AppendFrame(nil, testDeliver(ids...)))[1:]
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeDeliver(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Fatalf("decoding a 100-message Deliver makes %v allocations, want at most 3", allocs)
	}
}

func TestDecodeTruncated(t *testing.T) {
	for name, f := range sampleFrames() {
		b := body(t, AppendFrame(nil, f))
		for n := range len(b) {
			if _, err := DecodeFrame(b[:n]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s cut to %d of %d bytes: err %v, want ErrMalformed", name, n, len(b), err)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	okDrain := body(t, AppendFrame(nil, Drain{Seq: 1, Clients: []string{"c"}}))
	deliverHead := []byte{typeDeliver, 1, 0, 1, 'c', 1, 's', 0} // seq, epoch, client, session, max wait
	withCount := func(head []byte, count ...byte) []byte {
		return append(append([]byte(nil), head...), count...)
	}
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "empty body"},
		{"unknown type", []byte{0}, "unknown frame type 0"},
		{"unknown type high", []byte{200, 1}, "unknown frame type 200"},
		{"trailing", append(append([]byte(nil), okDrain...), 0), "1 trailing bytes"},
		{"non-minimal seq", []byte{typePing, 0x80, 0x00}, "non-minimal varint"},
		{"non-minimal epoch", []byte{typeDrain, 1, 0x81, 0x00, 1, 1, 'c'}, "non-minimal varint"},
		{"varint overflow", []byte{typePing, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, "overflows"},
		{"huge string length", []byte{typeReject, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "exceeds"},
		{"string past end", []byte{typeReject, 5, 'a', 'b'}, "exceeds"},
		{"bad magic", append([]byte{typeHello}, "HTTP\x01\x00"...), `bad magic "HTTP"`},
		{"max wait over 32 bits", []byte{typeDeliver, 1, 0, 1, 'c', 1, 's', 0x80, 0x80, 0x80, 0x80, 0x10, 0}, "overflows 32 bits"},
		{"deliver count past body", withCount(deliverHead, 2, 0, 0, 0, 0, 0), "2 items cannot fit in the 5 bytes left"},
		{"deliver count huge", withCount(deliverHead, 0xff, 0xff, 0xff, 0xff, 0x0f), "at most 10000"},
		{"deliver over MaxMsgs", withCount(deliverHead, 0x91, 0x4e), "10001 items: at most 10000"},
		{"drain count past body", []byte{typeDrain, 1, 0, 3, 0, 0}, "3 items cannot fit in the 2 bytes left"},
		{"drain count huge", []byte{typeDrain, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "cannot fit"},
		{"deliver message cut", withCount(deliverHead, 1, 1, 'i', 1, 't', 0, 1), "truncated"},
	} {
		_, err := DecodeFrame(c.body)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want ErrMalformed mentioning %q", c.name, err, c.want)
		}
	}
}

// A hostile count in a small body must not make the decoder allocate for it.
func TestDecodeHostileCountAllocatesNothing(t *testing.T) {
	for name, b := range map[string][]byte{
		"deliver": {typeDeliver, 1, 0, 1, 'c', 1, 's', 0, 0x90, 0x4e, 0, 0, 0, 0, 0}, // 10000 messages
		"drain":   {typeDrain, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		const runs = 100
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			_, err = DecodeFrame(b)
		}
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
		// The error's own allocations only: 10,000 Msgs would take 720 kB.
		if n := (after.TotalAlloc - before.TotalAlloc) / runs; n > 1<<10 {
			t.Errorf("%s: %d bytes allocated refusing the count", name, n)
		}
	}
}

func TestRequestAnswers(t *testing.T) {
	three := body(t, AppendFrame(nil, Deliver{Seq: 77, Client: "c", Session: "s", Msgs: msgs("a", "b", "c")}))
	none := body(t, AppendFrame(nil, Deliver{Seq: 9, Client: "c"}))
	for _, c := range []struct {
		name string
		body []byte
		seq  uint64
		n    int
	}{
		{"deliver cut after its count", three[:9], 77, 3},
		{"deliver cut in a message", three[:12], 77, 3},
		{"deliver without messages", none, 9, 1},
		{"kick seq only", []byte{typeKick, 5}, 5, 1},
		{"drain seq only", []byte{typeDrain, 6, 0xff}, 6, 1},
	} {
		if seq, n, ok := requestAnswers(c.body); !ok || seq != c.seq || n != c.n {
			t.Errorf("%s: requestAnswers = %d, %d, %v; want %d, %d, true", c.name, seq, n, ok, c.seq, c.n)
		}
	}
	for _, b := range [][]byte{
		nil, {typeDeliver}, {typeDeliver, 0x80}, three[:8], {typePing, 1}, {typeResult, 1},
		{typeDeliver, 1, 0, 1, 'c', 1, 's', 0, 0x91, 0x4e}, // 10001 messages
	} {
		if _, _, ok := requestAnswers(b); ok {
			t.Errorf("requestAnswers(%x) ok, want not", b)
		}
	}
}

func TestStatusString(t *testing.T) {
	want := map[Status]string{
		StatusDelivered: "delivered", StatusNotHere: "not-here", StatusStaleEpoch: "stale-epoch",
		StatusExpired: "expired", StatusFailed: "failed", StatusBadRequest: "bad-request",
		StatusQueued: "queued", StatusRejected: "rejected", 0: "status(0)", 9: "status(9)",
	}
	for s, w := range want {
		if got := s.String(); got != w {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(s), got, w)
		}
	}
}

func TestFrameReader(t *testing.T) {
	var stream []byte
	stream = AppendFrame(stream, Ping{Seq: 1})
	stream = AppendFrame(stream, Deliver{Client: "c", Session: "s", Msgs: []Msg{{Topic: "t", Payload: make([]byte, 100<<10)}}})
	stream = AppendFrame(stream, Pong{Seq: 2})
	fr := frameReader{br: bufio.NewReader(bytes.NewReader(stream)), max: DefaultMaxFrame}
	for i, want := range []byte{typePing, typeDeliver, typePong} {
		b, err := fr.next()
		if err != nil || b[0] != want {
			t.Fatalf("frame %d: %x, %v", i, b[:1], err)
		}
	}
	if cap(fr.buf) > keepBuf {
		t.Error("frameReader kept a large buffer")
	}
	if _, err := fr.next(); err == nil {
		t.Fatal("read past the end")
	}

	for _, c := range []struct {
		name, stream string
		want         error
	}{
		{"empty frame", "\x00\x00\x00\x00", ErrMalformed},
		{"short header", "\x00\x00", nil},
		{"short body", "\x00\x00\x00\x05\x08", nil},
	} {
		fr := frameReader{br: bufio.NewReader(strings.NewReader(c.stream)), max: 10}
		_, err := fr.next()
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestFrameReaderRefusesBeforeAllocating(t *testing.T) {
	fr := frameReader{br: bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, typePing})), max: DefaultMaxFrame}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := fr.next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err %v, want ErrFrameTooLarge", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("allocated %d bytes refusing a frame", n)
	}
}
