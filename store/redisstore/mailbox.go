package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

const (
	// keyGrace is how long a mailbox's keys outlive its latest expiry, so that an
	// abandoned mailbox vanishes by itself a little after its last message expired, and
	// a message never outlives the key that holds it.
	keyGrace = time.Minute
	// maxPeek caps the messages one Peek returns, which bounds the script's work and the
	// reply's size.
	maxPeek = 1000
	// maxRunMessages and maxRunBytes bound one run of the append script: a client's
	// messages beyond them in one Append go to further runs, in order, so that no script
	// holds Redis for long.
	maxRunMessages = 128
	maxRunBytes    = 1 << 20
	// maxRemoveIDs bounds the ids of one run of the remove script (Lua's unpack takes a
	// few thousand values at most).
	maxRemoveIDs = 1000
)

// Append adds each message at the tail of its recipient's mailbox unless its id is
// already there (Duplicate) or the mailbox holds limit messages (Err wraps
// store.ErrMailboxFull). Redis sets each new message's sequence number and expiry, from
// its own clock. All of one call's messages go in one pipeline: one append script run
// per client (more for many or large messages), each a single atomic step that also
// reads the client's presence. A run Redis refused for lack of memory gives each of its
// messages an Err that wraps store.ErrStoreFull; nothing of that run was written.
//
// The id check and the append are one script, so a retried Append reports Duplicate
// with the first attempt's sequence number and never adds a message twice.
func (s *Store) Append(ctx context.Context, limit int, msgs []store.Message) ([]store.AppendResult, error) {
	if err := store.CheckAppend(limit, msgs); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return []store.AppendResult{}, nil
	}
	type run struct {
		client string
		msgs   []int // indexes into msgs
		bytes  int
	}
	var runs []run
	open := map[string]int{} // client -> its run still taking messages
	calls := []scriptCall{}
	token := "" // marks this call's chained runs (see appendLua)
	for i, m := range msgs {
		body := encodeBody(m)
		r, ok := open[m.To]
		if !ok || len(runs[r].msgs) == maxRunMessages || runs[r].bytes+len(body) > maxRunBytes {
			prev := ""
			if ok {
				// The client's run before this one (run r) must leave a mark, and this one
				// wait for it; the run's index makes the mark unique within the call.
				if token == "" {
					token = strconv.FormatUint(rand.Uint64(), 36)
				}
				prev = token + ":" + strconv.Itoa(r)
				calls[r].args[3] = prev
			}
			r = len(runs)
			open[m.To] = r
			runs = append(runs, run{client: m.To})
			calls = append(calls, scriptCall{keys: s.keys.appendKeys(m.To), args: []any{limit, s.grace.Milliseconds(), prev, "", s.waitsArg()}})
		}
		runs[r].msgs = append(runs[r].msgs, i)
		runs[r].bytes += len(body)
		calls[r].args = append(calls[r].args, m.ID, ttlMillis(m.TTL), body, m.CollapseKey, m.CollapseLimit, laneArg(m.Priority))
	}
	// Registered first, so that the receipt of a message delivered at once finds it. (A
	// run of its own: on a cluster its slot is on another shard than the mailboxes.)
	if err := s.register(ctx, msgs); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	cmds, err := s.evalAll(ctx, s.scripts.append, calls, write)
	if err != nil {
		return nil, s.fail("append", err)
	}
	res := make([]store.AppendResult, len(msgs))
	for ri, cmd := range cmds {
		r := runs[ri]
		if err := cmd.Err(); isOOM(err) {
			for _, i := range r.msgs {
				res[i].Err = s.fail(fmt.Sprintf("append %q to %q", msgs[i].ID, msgs[i].To), err)
			}
			continue
		}
		vals, err := cmd.Slice()
		if err != nil {
			return nil, s.fail("append", err)
		}
		if want := len(presenceFieldNames) + 4*len(r.msgs); len(vals) != want {
			return nil, fmt.Errorf("append: script returned %d values, want %d", len(vals), want)
		}
		p, err := parsePresence(r.client, vals[:len(presenceFieldNames)])
		if err != nil {
			return nil, fmt.Errorf("append: %w", err)
		}
		out := vals[len(presenceFieldNames):]
		for j, i := range r.msgs {
			status, _ := out[4*j].(int64)
			seq, _ := out[4*j+1].(int64)
			depth, _ := out[4*j+2].(int64)
			old, _ := out[4*j+3].(string)
			res[i] = store.AppendResult{Seq: uint64(seq), Depth: int(depth), Duplicate: status == 1, Presence: p, Collapsed: old}
			switch status {
			case 2:
				res[i].Seq = 0
				res[i].Err = fmt.Errorf("append %q to %q: %w (limit %d)", msgs[i].ID, msgs[i].To, store.ErrMailboxFull, limit)
			case 3:
				res[i].Seq = 0
				res[i].Err = fmt.Errorf("append %q to %q: %w (limit %d)", msgs[i].ID, msgs[i].To, store.ErrTooManyCollapseKeys, msgs[i].CollapseLimit)
			}
		}
	}
	s.endCollapsed(ctx, msgs, res)
	return res, nil
}

var _ store.Priorities = (*Store)(nil)

// Peek returns up to n messages (at most 1000) of the normal lane of the client's mailbox
// whose sequence number is above after, oldest first, each with the TTL it has left on
// Redis's clock. Expired messages are never returned: the script deletes those at the
// head and those it reads past.
func (s *Store) Peek(ctx context.Context, client string, after uint64, n int) ([]store.Message, error) {
	return s.peekLane(ctx, "peek", client, store.PriorityNormal, after, n)
}

// PeekHigh is Peek for the high lane of the client's mailbox (store.Priorities): the same
// script on the high set.
func (s *Store) PeekHigh(ctx context.Context, client string, after uint64, n int) ([]store.Message, error) {
	return s.peekLane(ctx, "peek high", client, store.PriorityHigh, after, n)
}

// peekLane runs the peek script on one lane of the client's mailbox and sets each
// message's Priority to the lane's (the stored body does not hold it: the set does).
func (s *Store) peekLane(ctx context.Context, what, client string, lane store.Priority, after uint64, n int) ([]store.Message, error) {
	if client == "" {
		return nil, fmt.Errorf("%s: empty client id", what)
	}
	if n <= 0 {
		return nil, nil
	}
	n = min(n, maxPeek)
	set := s.keys.order(client)
	if lane == store.PriorityHigh {
		set = s.keys.high(client)
	}
	// Concurrent Peeks share a pipeline (connects.go): a storm of new sessions each reads
	// its mailbox once.
	vals, err := sliceOf(s.peekBatched(ctx, scriptCall{
		keys: []string{set, s.keys.messages(client)},
		args: []any{strconv.FormatUint(after, 10), n},
	}))
	if err != nil {
		return nil, s.fail(what, err)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("%s: script returned no clock", what)
	}
	now, _ := vals[0].(int64)
	msgs := make([]store.Message, 0, len(vals)-1)
	for _, v := range vals[1:] {
		str, _ := v.(string)
		m, err := decodeMessage(str, now)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, client, err)
		}
		m.Priority = lane
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// laneArg is the append script's lane argument for a message of priority p: only
// store.PriorityHigh goes in the high lane, any other value in the normal one.
func laneArg(p store.Priority) string {
	if p == store.PriorityHigh {
		return "1"
	}
	return "0"
}

// Remove deletes the named messages from their mailboxes, wherever they are in them, in
// one pipeline: one script run per client (more for many ids), each atomic.
func (s *Store) Remove(ctx context.Context, items ...store.Removal) error {
	var calls []scriptCall
	for _, it := range items {
		if it.Client == "" {
			return errors.New("remove: empty client id")
		}
		keys := []string{s.keys.order(it.Client), s.keys.messages(it.Client), s.keys.high(it.Client)}
		for ids := range slices.Chunk(it.IDs, maxRemoveIDs) {
			args := make([]any, len(ids))
			for i, id := range ids {
				args[i] = id
			}
			calls = append(calls, scriptCall{keys: keys, args: args})
		}
	}
	return s.evalEach(ctx, "remove", s.scripts.remove, calls, noWait)
}

// Depth returns the number of messages in the client's mailbox, both lanes, expired ones
// not yet deleted included: the sizes of the two sets, read in one pipeline.
func (s *Store) Depth(ctx context.Context, client string) (int, error) {
	if client == "" {
		return 0, errors.New("depth: empty client id")
	}
	var normal, high *redis.IntCmd
	if _, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		normal, high = s.depthCmds(ctx, pipe, client)
		return nil
	}); err != nil {
		return 0, s.fail("depth", err)
	}
	return int(normal.Val() + high.Val()), nil
}

// depthCmds queues on pipe the reads of the sizes of the client's two lanes, whose sum is
// its mailbox depth.
func (s *Store) depthCmds(ctx context.Context, pipe redis.Pipeliner, client string) (normal, high *redis.IntCmd) {
	return pipe.ZCard(ctx, s.keys.order(client)), pipe.ZCard(ctx, s.keys.high(client))
}

// endCollapsed records the collapsed receipt of each registered message this Append
// replaced. The replacement is already stored, so a failure here does not fail the
// Append: it is logged, and the replaced message's registration ends, later, in an
// expired receipt instead.
func (s *Store) endCollapsed(ctx context.Context, msgs []store.Message, res []store.AppendResult) {
	var rs []store.Receipt
	for i, r := range res {
		if r.Collapsed != "" {
			rs = append(rs, store.Receipt{Client: msgs[i].To, ID: r.Collapsed, Status: store.ReceiptCollapsed,
				Detail: "replaced by " + msgs[i].ID, OnlyPending: true})
		}
	}
	if len(rs) == 0 {
		return
	}
	// The sender may be gone; the receipts are owed all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		if err = s.Finish(ctx, rs...); err == nil {
			return
		}
	}
	s.log.Warn("redisstore: record the receipts of collapsed messages", "messages", len(rs), "error", err)
}
