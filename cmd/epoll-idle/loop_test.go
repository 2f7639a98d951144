//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/mqttclient"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

func startServer(t *testing.T) *server {
	t.Helper()
	s, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	t.Cleanup(func() {
		s.close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestIdleClients: clients of both protocol versions connect, subscribe to their inbox
// (granted QoS 1), ping and publish at QoS 1 (acknowledged), all on one loop.
func TestIdleClients(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var clients []*mqttclient.Client
	for i := range 20 {
		v := byte(4 + i%2)
		id := fmt.Sprint("c", i)
		c, err := mqttclient.Dial(ctx, s.addr.String(), mqttclient.Options{ID: id, Version: v, KeepAlive: 60})
		if err != nil {
			t.Fatalf("client %d (MQTT %d): %v", i, v, err)
		}
		defer c.Close()
		if err := c.Subscribe(ctx, "inbox/"+id, 1); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
		clients = append(clients, c)
	}
	for i, c := range clients {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	testenv.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := s.connected.Load(); n != 20 {
			return fmt.Errorf("%d connected, want 20", n)
		}
		return nil
	})
}

// TestPacketsInPieces: packets split across reads, and several in one read, are each
// answered once, in order (a QoS 1 PUBLISH with its PUBACK).
func TestPacketsInPieces(t *testing.T) {
	s := startServer(t)
	conn, err := net.Dial("tcp", s.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	connect := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 4, 'p', 'i', 'e', 'c'}
	subscribe := []byte{0x82, 9, 0, 7, 0, 4, 'x', '/', 'y', 'z', 1}
	publish := []byte{0x32, 6, 0, 1, 't', 0, 9, 'x'} // QoS 1, packet id 9
	ping := []byte{0xc0, 0}
	stream := append(append(append(append([]byte{}, connect...), subscribe...), publish...), ping...)
	// One byte at a time up to the middle of SUBSCRIBE, then the rest in one write.
	cut := len(connect) + 5
	for i := range cut {
		if _, err := conn.Write(stream[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(stream[cut:]); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x20, 2, 0, 0, 0x90, 3, 0, 7, 1, 0x40, 2, 0, 9, 0xd0, 0}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

// TestRefusals: a first packet other than CONNECT, and a second CONNECT, close the
// connection.
func TestRefusals(t *testing.T) {
	s := startServer(t)
	for name, stream := range map[string][]byte{
		"ping before connect": {0xc0, 0},
		"second connect": {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 'a',
			0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 'a'},
	} {
		conn, err := net.Dial("tcp", s.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(stream); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "second connect" && !bytes.Equal(b, []byte{0x20, 2, 0, 0}) {
			t.Fatalf("%s: read % x before the close, want one CONNACK", name, b)
		}
		if name == "ping before connect" && len(b) != 0 {
			t.Fatalf("%s: read % x, want nothing", name, b)
		}
	}
}
