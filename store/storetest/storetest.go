// Package storetest is the behaviour suite every store.Store implementation must pass.
// Each implementation's tests call Run with a way to open a store on a fresh namespace.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
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
		{"LookupAll", testLookupAll},
		{"DisconnectOwnerOnly", testDisconnect},
		{"LateDisconnectKeepsNewer", testLateDisconnect},
		{"Reassert", testReassert},
		{"ReassertRecreatesAbsent", testReassertRecreates},
		{"ReassertOfTakenOverRefused", testReassertTakenOver},
		{"ClearNodeMatchesNodeAndEpoch", testClearNode},
		{"ClearNodeMany", testClearNodeMany},
		{"PresenceRefusesBadInput", testPresenceBadInput},
		{"RecordedEpochs", testRecordedEpochs},

		{"TakeoverChainPending", testTakeoverChain},
		{"TakeoverSameNodeNotPending", testTakeoverSameNode},
		{"ConfirmTakeoverOwnerOnly", testConfirmTakeover},
		{"ConfirmAfterReassertClearsNone", testConfirmAfterRecreate},
		{"DisconnectKeepsPending", testDisconnectKeepsPending},
		{"ClearNodeKeepsPending", testClearNodeKeepsPending},
		{"ConnectRetrySameResult", testConnectRetrySameResult},
		{"PendingBounded", testPendingBounded},

		{"FIFOWithCursors", testFIFOWithCursors},
		{"PeekAfterCursor", testPeekAfterCursor},
		{"PeekReturnsAtMostAThousand", testPeekAtMostAThousand},
		{"SeqNeverReused", testSeqNeverReused},
		{"AppendDuplicate", testAppendDuplicate},
		{"AppendFullKeepsOld", testAppendFull},
		{"AppendBatchManyClients", testAppendBatchManyClients},
		{"AppendReadsPresence", testAppendPresence},
		{"AppendRefusesBadInput", testAppendBadInput},
		{"RemoveAnywhere", testRemoveAnywhere},
		{"PayloadsRoundTrip", testPayloads},
		{"ClientIDsDoNotCollide", testClientIDs},
		{"ConcurrentAppends", testConcurrentAppends},
		{"MailboxesWalk", testMailboxesWalk},
		{"MailboxesWalkMany", testMailboxesWalkMany},
		{"MailboxesBadCursor", testMailboxesBadCursor},

		{"TTLCountsOnStoreClock", testTTLOnStoreClock},
		{"ExpiredHeadDeleted", testExpiredHead},
		{"ExpiredBehindSkipped", testExpiredBehind},

		{"NoticesFIFO", testNoticesFIFO},
		{"NoticesPerNode", testNoticesPerNode},
		{"TakeNoticesUpToMax", testTakeNoticesUpToMax},
		{"TakeNoticesAtMostAThousand", testTakeNoticesAtMostAThousand},
		{"NoticesReturnedUntilDone", testNoticesReturnedUntilDone},
		{"DoneNoticesRemovesPrefix", testDoneNoticesPrefix},
		{"NoticeSeqsIncrease", testNoticeSeqsIncrease},
		{"NoticesOneTakerConcurrentNotify", testNoticesConcurrentNotify},
		{"NotifyRefusesBadInput", testNotifyBadInput},

		{"RetainedSetReplaceClear", testRetainedSetReplaceClear},
		{"RetainedDataRoundTrip", testRetainedDataRoundTrip},
		{"RetainedVersionsIncrease", testRetainedVersionsIncrease},
		{"RetainedExpiry", testRetainedExpiry},
		{"RetainedMany", testRetainedMany},
		{"RetainedRefusesBadInput", testRetainedBadInput},

		{"GroupChangeAndSize", testGroupChange},
		{"GroupPagesWalkAll", testGroupPages},
		{"GroupNamesDoNotCollide", testGroupNames},
		{"GroupDelete", testGroupDelete},
		{"GroupRefusesBadInput", testGroupBadInput},
		{"JobCreateOnce", testJobCreateOnce},
		{"JobLeaseFencing", testJobLease},
		{"JobLeaseExpires", testJobLeaseExpires},
		{"JobEnds", testJobEnds},

		{"CollapseReplaces", testCollapseReplaces},
		{"CollapseFullMailbox", testCollapseFullMailbox},
		{"CollapseKeyLimit", testCollapseKeyLimit},
		{"CollapseReusedID", testCollapseReusedID},
		{"CollapseReplacedThenResent", testCollapseReplacedThenResent},

		{"PriorityLanesKeepOrder", testPriorityLanes},
		{"PriorityCursors", testPriorityCursors},
		{"PriorityDuplicateAcrossLanes", testPriorityDuplicate},
		{"PriorityLimitCountsBoth", testPriorityLimit},
		{"PriorityRemoveEither", testPriorityRemove},
		{"PriorityDepthCountsBoth", testPriorityDepth},
		{"PriorityExpiry", testPriorityExpiry},
		{"PriorityCollapseAcrossLanes", testPriorityCollapse},
		{"PriorityUnknownClient", testPriorityUnknown},

		{"ScheduleDueInOrder", testScheduleDueInOrder},
		{"ScheduleExpiredDropped", testScheduleExpiredDropped},

		{"ReceiptOncePerMessage", testReceiptOncePerMessage},
		{"ReceiptOnlyPending", testReceiptOnlyPending},
		{"ReceiptPendingState", testReceiptPendingState},
		{"ReceiptSweepExpires", testReceiptSweepExpires},
		{"ReceiptsLogOrderAndCursor", testReceiptsLogOrderAndCursor},
		{"ReceiptsRetention", testReceiptsRetention},
		{"ReceiptConsumers", testReceiptConsumers},
		{"ReceiptsRefuseBadInput", testReceiptsRefuseBadInput},

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

// NewMessage returns a message for client with an hour to live.
func NewMessage(client, id string) store.Message {
	return store.Message{
		ID: id, To: client, Topic: "t/" + id, Payload: []byte("payload " + id), QoS: 1,
		Accepted: time.Now(), TTL: time.Hour,
	}
}

func samePresence(t *testing.T, what string, got, want store.Presence) {
	t.Helper()
	if got.Client != want.Client || got.Node != want.Node || got.Epoch != want.Epoch ||
		got.Session != want.Session || !got.Since.Equal(want.Since) {
		t.Fatalf("%s: presence %+v, want %+v", what, got, want)
	}
}

// samePresences checks that got are want, in order.
func samePresences(t *testing.T, what string, got []store.Presence, want ...store.Presence) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d presences %+v, want %d: %+v", what, len(got), got, len(want), want)
	}
	for i := range got {
		samePresence(t, fmt.Sprint(what, " ", i), got[i], want[i])
	}
}

// sameMessage checks that got, read by Peek, is want as appended: the same fields, a
// sequence number, and a TTL left that is positive and no more than want's.
func sameMessage(t *testing.T, what string, got, want store.Message) {
	t.Helper()
	if got.ID != want.ID || got.To != want.To || got.Topic != want.Topic || got.QoS != want.QoS ||
		!bytes.Equal(got.Payload, want.Payload) || !got.Accepted.Equal(want.Accepted) {
		t.Fatalf("%s: message %+v, want %+v", what, got, want)
	}
	if got.TTL <= 0 || got.TTL > want.TTL {
		t.Fatalf("%s: TTL %v left, want more than 0 and at most the %v given", what, got.TTL, want.TTL)
	}
	if got.Seq == 0 {
		t.Fatalf("%s: no sequence number", what)
	}
}

func mustConnect(t *testing.T, s store.Store, p store.Presence) store.ConnectResult {
	t.Helper()
	res, err := s.Connect(ctxT(t), p)
	if err != nil {
		t.Fatalf("connect %+v: %v", p, err)
	}
	return res
}

// mustAppend appends msgs and returns one result per message, failing the test on a
// call-level error only: a message's own Err is the caller's to check.
func mustAppend(t *testing.T, s store.Store, limit int, msgs ...store.Message) []store.AppendResult {
	t.Helper()
	res, err := s.Append(ctxT(t), limit, msgs)
	if err != nil {
		t.Fatalf("append %v: %v", ids(msgs), err)
	}
	if len(res) != len(msgs) {
		t.Fatalf("append of %d messages returned %d results", len(msgs), len(res))
	}
	return res
}

// mustAdd is mustAppend for messages that must all be accepted.
func mustAdd(t *testing.T, s store.Store, limit int, msgs ...store.Message) []store.AppendResult {
	t.Helper()
	res := mustAppend(t, s, limit, msgs...)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("append %s to %q: %v", msgs[i].ID, msgs[i].To, r.Err)
		}
	}
	return res
}

func mustPeek(t *testing.T, s store.Store, client string, after uint64, n int) []store.Message {
	t.Helper()
	msgs, err := s.Peek(ctxT(t), client, after, n)
	if err != nil {
		t.Fatalf("peek %q after %d: %v", client, after, err)
	}
	for i, m := range msgs {
		if m.Seq <= after || (i > 0 && m.Seq <= msgs[i-1].Seq) {
			t.Fatalf("peek %q after %d: seq %d at %d of %v", client, after, m.Seq, i, seqs(msgs))
		}
		if m.TTL <= 0 {
			t.Fatalf("peek %q: message %s with TTL %v", client, m.ID, m.TTL)
		}
	}
	return msgs
}

// peekIDs checks that Peek after after returns the messages want, by id.
func peekIDs(t *testing.T, s store.Store, client string, after uint64, want ...string) []store.Message {
	t.Helper()
	msgs := mustPeek(t, s, client, after, 1000)
	if got := ids(msgs); !slices.Equal(got, want) {
		t.Fatalf("peek %q after %d = %v, want %v", client, after, got, want)
	}
	return msgs
}

func mustRemove(t *testing.T, s store.Store, items ...store.Removal) {
	t.Helper()
	if err := s.Remove(ctxT(t), items...); err != nil {
		t.Fatalf("remove %v: %v", items, err)
	}
}

func mustDepth(t *testing.T, s store.Store, client string) int {
	t.Helper()
	n, err := s.Depth(ctxT(t), client)
	if err != nil {
		t.Fatalf("depth %q: %v", client, err)
	}
	return n
}

// checkDepth checks the client's depth.
func checkDepth(t *testing.T, s store.Store, client string, want int) {
	t.Helper()
	if d := mustDepth(t, s, client); d != want {
		t.Fatalf("depth of %q = %d, want %d", client, d, want)
	}
}

// awaitPeek polls Peek until it returns the messages want, by id, and fails the test if
// that takes longer than within. What it waits for is time passing on the store's clock
// (a message expiring), which no event announces.
func awaitPeek(t *testing.T, s store.Store, client string, after uint64, within time.Duration, want ...string) []store.Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msgs := mustPeek(t, s, client, after, 1000)
		got := ids(msgs)
		if slices.Equal(got, want) {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("peek %q after %d = %v after %v, want %v", client, after, got, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ids(msgs []store.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func seqs(msgs []store.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// messages returns count messages for client with ids prefix0000, prefix0001, ...
func messages(client, prefix string, from, count int) []store.Message {
	out := make([]store.Message, count)
	for i := range out {
		out[i] = NewMessage(client, fmt.Sprintf("%s%04d", prefix, from+i))
	}
	return out
}

// removal names msgs for Remove: they must all be for the same client.
func removal(msgs ...store.Message) store.Removal {
	r := store.Removal{Client: msgs[0].To}
	for _, m := range msgs {
		r.IDs = append(r.IDs, m.ID)
	}
	return r
}
