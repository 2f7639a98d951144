package node_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-mqtt/switchboard/auth"
	"github.com/switchboard-mqtt/switchboard/coord/memcoord"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/node"
)

// fuzzSecret signs the seeds' JWTs; fuzzPassword is alice's password in the fuzz node's
// credentials file.
var (
	fuzzSecret   = []byte("fuzz-0123456789abcdef0123456789abcdef")
	fuzzPassword = "alice-fuzz-password"
)

// FuzzConnect sends arbitrary bytes, as the first bytes of a connection, to a real node
// (one per fuzzing process, on an in-memory coordinator and an embedded store) with a
// credentials file, JWT and anonymous access on and the default pre-authentication limits,
// then half-closes the connection: the node must close it in time, and keep answering a
// good client. Seeds: CONNECTs of MQTT 3.1, 3.1.1 and 5 with Wills, properties, usernames,
// passwords and tokens, followed by packets, and fixed headers at and past the limits.
func FuzzConnect(f *testing.F) {
	seeds := connectSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	addr := startFuzzNode(f)
	// The seeds are what they claim to be.
	for i, want := range map[int]byte{0: 0, 1: 0, 2: 0, 3: 0, 4: 0x86, 9: 0, 10: 0x85, 11: 0x87} {
		if code, err := rawConnect(addr, seeds[i]); err != nil || code != want {
			f.Fatalf("seed %d: CONNACK %#x, %v; want %#x", i, code, err, want)
		}
	}
	var src atomic.Uint32
	f.Fuzz(func(t *testing.T, data []byte) {
		// Inputs come from 127.0.1.1-250 in turn, so the failure budget of one address
		// (10 a minute) leaves most password inputs checked; the probe comes from 127.0.0.1.
		from := fmt.Sprintf("127.0.1.%d", 1+src.Add(1)%250)
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial the node: %v", err)
		}
		defer c.Close()
		// Bounds for a node that never closes, not for its speed: on a loaded machine one
		// bcrypt comparison (cost 10, one at a time on two cores) can take a second or more.
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Write(data); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("write: %v", err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); isTimeout(err) {
			t.Fatalf("the node kept a half-closed connection open for 15s after %x", data)
		}
		if code, err := rawConnect(addr, connectPacket(5, 0x02, "fuzz-probe", nil, nil, nil)); err != nil || code != 0 {
			t.Fatalf("a good client after %x: CONNACK %#x, %v", data, code, err)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) // a write to a connection the node already closed
}

// startFuzzNode starts the fuzz target's node and returns its MQTT address.
func startFuzzNode(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(fuzzPassword), 10) // the cheapest cost a file may hold
	if err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(dir, "users.json")
	doc := fmt.Sprintf(`{"users": {"alice": {"password": %q, "clients": ["alice", "alice-*"]}}}`, hash)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		tb.Fatal(err)
	}
	a, err := auth.New(auth.Config{File: file, AllowAnonymous: true, JWT: &auth.JWTConfig{HS256Secret: fuzzSecret}})
	if err != nil {
		tb.Fatal(err)
	}
	c := testenv.OpenMemCoord(tb, memcoord.NewCluster())
	st := testenv.EmbeddedStore(tb)

	cfg := node.DefaultConfig()
	cfg.ID = "fuzz-node"
	cfg.MQTTAddr, cfg.InternalAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Auth = a
	cfg.Limits.ConnRatePerIP = 0 // the probe connects once per input
	cfg.Limits.ConnectTimeout = 5 * time.Second
	n, err := node.Start(testenv.Context(tb, 30*time.Second), cfg, node.Deps{Coord: c, Store: st, Logger: testenv.Logger(tb)})
	if err != nil {
		tb.Fatalf("node.Start: %v", err)
	}
	tb.Cleanup(func() { _ = n.Close(context.Background()) })
	addr := n.Member().MQTTAddr
	testenv.Eventually(tb, 10*time.Second, 20*time.Millisecond, func() error {
		code, err := rawConnect(addr, connectPacket(5, 0x02, "fuzz-probe", nil, nil, nil))
		if err == nil && code != 0 {
			err = fmt.Errorf("CONNACK %#x", code)
		}
		return err
	})
	return addr
}

// rawConnect sends pk on a new connection and returns the CONNACK's reason code.
func rawConnect(addr string, pk []byte) (byte, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(pk); err != nil {
		return 0, err
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return 0, fmt.Errorf("no CONNACK: %w", err)
	}
	body := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, body); err != nil || hdr[0] != 0x20 || len(body) < 2 {
		return 0, fmt.Errorf("want CONNACK, got %x %x (%v)", hdr, body, err)
	}
	return body[1], nil
}

func mqttStr(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

func varint(n int) []byte {
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

func frame(first byte, body []byte) []byte {
	return append(append([]byte{first}, varint(len(body))...), body...)
}

// will is a CONNECT's Will: topic, payload, QoS and retain, and (MQTT 5) properties.
type will struct {
	topic, payload string
	qos            byte
	retain         bool
	props          []byte
}

// connectPacket builds a CONNECT: version 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) or 5, with the
// flags' clean bit as given (username, password and Will bits are set from the arguments),
// MQTT 5 properties props, and optional credentials and Will.
func connectPacket(version, flags byte, id string, props []byte, creds []string, w *will) []byte {
	name := "MQTT"
	if version == 3 {
		name = "MQIsdp"
	}
	if len(creds) > 0 {
		flags |= 0x80
	}
	if len(creds) > 1 {
		flags |= 0x40
	}
	if w != nil {
		flags |= 0x04 | w.qos<<3
		if w.retain {
			flags |= 0x20
		}
	}
	body := append(mqttStr(name), version, flags, 0, 30)
	if version == 5 {
		body = append(append(body, varint(len(props))...), props...)
	}
	body = append(body, mqttStr(id)...)
	if w != nil {
		if version == 5 {
			body = append(append(body, varint(len(w.props))...), w.props...)
		}
		body = append(append(body, mqttStr(w.topic)...), mqttStr(w.payload)...)
	}
	for _, s := range creds {
		body = append(body, mqttStr(s)...)
	}
	return frame(0x10, body)
}

func connectSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	token := func(sub string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "exp": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
		}).SignedString(fuzzSecret)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	// MQTT 5 properties: session expiry 60, receive maximum 10, maximum packet size 4096,
	// topic alias maximum 5, request problem information, a user property.
	props := []byte{0x11, 0, 0, 0, 60, 0x21, 0, 10, 0x27, 0, 0, 0x10, 0, 0x22, 0, 5, 0x17, 1}
	props = append(append(append(props, 0x26), mqttStr("k")...), mqttStr("v")...)
	// Will properties: delay 1, payload format 1, message expiry 30, content type, a
	// response topic, correlation data, a user property with the node's reserved prefix.
	wprops := []byte{0x18, 0, 0, 0, 1, 0x01, 1, 0x02, 0, 0, 0, 30}
	wprops = append(append(wprops, 0x03), mqttStr("text/plain")...)
	wprops = append(append(wprops, 0x08), mqttStr("$switchboard/probe/alice")...)
	wprops = append(append(wprops, 0x09), mqttStr("corr")...)
	wprops = append(append(append(wprops, 0x26), mqttStr("sb-id")...), mqttStr("forged")...)
	subscribe := frame(0x82, append(append([]byte{0, 1, 0}, mqttStr("inbox/alice")...), 1))
	publish := frame(0x32, append(append(mqttStr("$switchboard/probe/alice"), 0, 2, 0), "hello"...))
	seeds := [][]byte{
		connectPacket(5, 0x02, "anon-5", nil, nil, nil),
		connectPacket(4, 0x02, "anon-4", nil, nil, nil),
		connectPacket(3, 0x02, "anon-3", nil, nil, nil),
		connectPacket(5, 0x02, "alice", props, []string{"alice", fuzzPassword}, nil),
		connectPacket(5, 0x02, "alice", nil, []string{"alice", "wrong-password"}, nil),
		connectPacket(5, 0x02, "mallory", nil, []string{"mallory", "whatever"}, nil),
		connectPacket(5, 0x02, "alice", nil, []string{"alice"}, nil), // username, no password
		connectPacket(4, 0x02, "alice-phone", nil, []string{"alice", fuzzPassword},
			&will{topic: "$switchboard/probe/alice-phone", payload: "gone", qos: 1}),
		connectPacket(5, 0x00, "alice-tablet", props, []string{"alice", fuzzPassword},
			&will{topic: "$switchboard/probe/alice-tablet", payload: "gone", qos: 1, retain: true, props: wprops}),
		connectPacket(5, 0x02, "jwt-dev", props, []string{"", token("jwt-dev")}, nil),
		connectPacket(5, 0x02, "jwt-dev", nil, []string{"ignored", token("someone-else")}, nil),
		connectPacket(5, 0x02, "anon-will", nil, nil, &will{topic: "inbox/alice", payload: "forged", qos: 2}),
		append(connectPacket(5, 0x02, "alice", nil, []string{"alice", fuzzPassword}, nil), append(subscribe, publish...)...),
		append(connectPacket(4, 0x02, "anon-sub", nil, nil, nil), subscribe...),
		{0x10, 0xff, 0xff, 0xff, 0x7f},       // 256 MiB declared
		{0x10, 0x80, 0x80, 0x04, 0, 4, 'M'},  // exactly the CONNECT limit, truncated
		{0x10, 0x81, 0x80, 0x04, 0, 4, 'M'},  // one byte past it
		{0x10, 0x80, 0x80, 0x80, 0x80, 0x01}, // a 5-byte remaining length
		{0x30, 0x02, 0, 0},                   // PUBLISH first
		{0x10, 0x00},                         // empty CONNECT
	}
	return seeds
}
