package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// sampleFrames has at least one frame of each type, with edge values.
func sampleFrames() map[string]Frame {
	return map[string]Frame{
		"hello":          Hello{Version: ProtocolVersion, Token: "secret"},
		"hello-notoken":  Hello{Version: ProtocolVersion},
		"hello-ok":       HelloOK{Version: ProtocolVersion},
		"reject":         Reject{Reason: "bad token"},
		"deliver":        Deliver{Seq: 1, Epoch: 1 << 40, Client: "dev-1", Session: "s-9", ID: "m-1", Topic: "a/b", Payload: []byte("hello"), QoS: 1, Expires: 1_700_000_000_000},
		"deliver-min":    Deliver{Client: "c", Topic: "t"},
		"deliver-edges":  Deliver{Seq: math.MaxUint64, Epoch: math.MinInt64, Client: "ü", Payload: []byte{0, 0xff}, QoS: 2, Expires: -1},
		"kick":           Kick{Seq: 300, Epoch: 7, Client: "dev-1", Session: "s-1"},
		"drain":          Drain{Seq: 2, Epoch: math.MaxInt64, Client: "dev-2"},
		"result":         Result{Seq: 1, Status: StatusDelivered},
		"result-detail":  Result{Seq: 128, Status: StatusFailed, Detail: "handler panic: boom"},
		"result-unknown": Result{Seq: 5, Status: 200},
		"ping":           Ping{Seq: 9},
		"pong":           Pong{Seq: 1 << 63},
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

func TestDecodeDoesNotAlias(t *testing.T) {
	b := body(t, AppendFrame(nil, Deliver{Client: "c", Topic: "t", Payload: []byte("pay")}))
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if d := f.(Deliver); string(d.Payload) != "pay" || d.Client != "c" {
		t.Fatalf("decoded frame changed with its input: %#v", d)
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
	okDrain := body(t, AppendFrame(nil, Drain{Seq: 1, Client: "c"}))
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
		{"non-minimal epoch", []byte{typeDrain, 1, 0x81, 0x00, 1, 'c'}, "non-minimal varint"},
		{"varint overflow", []byte{typePing, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, "overflows"},
		{"huge string length", []byte{typeReject, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "exceeds"},
		{"string past end", []byte{typeReject, 5, 'a', 'b'}, "exceeds"},
		{"bad magic", append([]byte{typeHello}, "HTTP\x01\x00"...), `bad magic "HTTP"`},
	} {
		_, err := DecodeFrame(c.body)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want ErrMalformed mentioning %q", c.name, err, c.want)
		}
	}
}

func TestRequestSeq(t *testing.T) {
	b := body(t, AppendFrame(nil, Deliver{Seq: 77, Client: "c"}))
	if seq, ok := requestSeq(b[:3]); !ok || seq != 77 {
		t.Fatalf("requestSeq = %d, %v; want 77, true", seq, ok)
	}
	for _, b := range [][]byte{nil, {typeDeliver}, {typeDeliver, 0x80}, {typePing, 1}, {typeResult, 1}} {
		if _, ok := requestSeq(b); ok {
			t.Errorf("requestSeq(%x) ok, want not", b)
		}
	}
}

func TestStatusString(t *testing.T) {
	want := map[Status]string{
		StatusDelivered: "delivered", StatusNotHere: "not-here", StatusStaleEpoch: "stale-epoch",
		StatusExpired: "expired", StatusFailed: "failed", StatusBadRequest: "bad-request",
		0: "status(0)", 7: "status(7)",
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
	stream = AppendFrame(stream, Deliver{Client: "c", Topic: "t", Payload: make([]byte, 100<<10)})
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
