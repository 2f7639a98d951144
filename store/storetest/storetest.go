// Package storetest is the behaviour suite every store.Store implementation must pass.
// Each implementation's tests call Run with a way to open a store on a fresh namespace.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store"
)

// Opener returns a Store on a namespace that is fresh for this test. The opener closes the
// store in its own cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the suite, each subtest on a fresh store.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		test func(*testing.T, store.Store)
	}{
		{"ConnectReturnsPrevious", testConnectReturnsPrevious},
		{"LookupOfflineAndDepth", testLookup},
		{"DisconnectOwnerOnly", testDisconnect},
		{"LateDisconnectKeepsNewer", testLateDisconnect},
		{"Reassert", testReassert},
		{"ClearNodeMatchesNodeAndEpoch", testClearNode},
		{"ClearNodeMany", testClearNodeMany},
		{"AppendFIFO", testAppendFIFO},
		{"AppendDuplicate", testAppendDuplicate},
		{"AppendFullKeepsOld", testAppendFull},
		{"AppendReadsPresence", testAppendPresence},
		{"ExpiredHeadNeverReturned", testExpiredHead},
		{"ExpiredBehindUnexpired", testExpiredBehind},
		{"AckHeadOnly", testAck},
		{"AckNotOwner", testAckNotOwner},
		{"PayloadsRoundTrip", testPayloads},
		{"ClientIDsDoNotCollide", testClientIDs},
		{"ConcurrentAppends", testConcurrentAppends},
		{"PingAndClose", testPingClose},
		{"CancelledContext", testCancelled},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
}

// ctxT returns a context that bounds one subtest.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Session returns a random session token.
func Session() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewPresence returns a presence for client on node at epoch with a fresh session.
func NewPresence(client, node string, epoch int64) store.Presence {
	return store.Presence{Client: client, Node: node, Epoch: epoch, Session: Session(), Since: time.Now()}
}

// NewMessage returns a message for client that expires in an hour.
func NewMessage(client, id string) store.Message {
	now := time.Now()
	return store.Message{
		ID: id, To: client, Topic: "t/" + id, Payload: []byte("payload " + id), QoS: 1,
		Accepted: now, Expires: now.Add(time.Hour),
	}
}

func samePresence(t *testing.T, what string, got, want store.Presence) {
	t.Helper()
	if got.Client != want.Client || got.Node != want.Node || got.Epoch != want.Epoch ||
		got.Session != want.Session || !got.Since.Equal(want.Since) {
		t.Fatalf("%s: presence %+v, want %+v", what, got, want)
	}
}

func sameMessage(t *testing.T, what string, got, want store.Message) {
	t.Helper()
	if got.ID != want.ID || got.To != want.To || got.Topic != want.Topic || got.QoS != want.QoS ||
		!bytes.Equal(got.Payload, want.Payload) || !got.Accepted.Equal(want.Accepted) ||
		!got.Expires.Equal(want.Expires) {
		t.Fatalf("%s: message %+v, want %+v", what, got, want)
	}
}

func mustConnect(t *testing.T, s store.Store, p store.Presence) store.Presence {
	t.Helper()
	prev, err := s.Connect(ctxT(t), p)
	if err != nil {
		t.Fatalf("connect %+v: %v", p, err)
	}
	return prev
}

func mustAppend(t *testing.T, s store.Store, m store.Message, limit int) store.AppendResult {
	t.Helper()
	res, err := s.Append(ctxT(t), m, limit)
	if err != nil {
		t.Fatalf("append %s to %q: %v", m.ID, m.To, err)
	}
	return res
}

func mustPeek(t *testing.T, s store.Store, client string, n int) []store.Message {
	t.Helper()
	msgs, err := s.Peek(ctxT(t), client, n)
	if err != nil {
		t.Fatalf("peek %q: %v", client, err)
	}
	return msgs
}

func mustDepth(t *testing.T, s store.Store, client string) int {
	t.Helper()
	n, err := s.Depth(ctxT(t), client)
	if err != nil {
		t.Fatalf("depth %q: %v", client, err)
	}
	return n
}

func ids(msgs []store.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
