// Package coord is the cluster's coordination: who is a live member, who is quarantined, and
// who leads. It is an interface with one implementation per backend (coord/zkcoord on
// ZooKeeper, coord/etcdcoord on etcd, coord/memcoord in memory for tests), each passing the
// suite in coord/coordtest. What does not depend on the backend is written here once and
// driven through a few primitives: the registration machine (Entry), the election recipe
// (Ballot), the liveness rule and its prober.
//
// A member entry is ephemeral (it vanishes when its owner's session or lease ends), carries
// an epoch that changes every time it is created, and is never re-created while a quarantine
// mark for the same member stands: what both ZooKeeper sessions and etcd leases can give.
package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrDuplicate means another live process holds the member id.
	ErrDuplicate = errors.New("member id is already registered by another live process")
	// ErrNotLeader means a fenced write was refused because the caller no longer leads.
	ErrNotLeader = errors.New("not the leader (leadership lost)")
	// ErrNotFound means the entry asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrClosed means the coordinator was closed.
	ErrClosed = errors.New("coordinator closed")
	// ErrUnavailable means the backend could not be reached in time.
	ErrUnavailable = errors.New("coordination backend unavailable")
)

// Member is one broker node as the cluster sees it: the data of its ephemeral entry.
type Member struct {
	ID           string    `json:"id"`
	MQTTAddr     string    `json:"mqtt_addr"`
	InternalAddr string    `json:"internal_addr"`
	AdminAddr    string    `json:"admin_addr"`
	Version      string    `json:"version"`
	StartedAt    time.Time `json:"started_at"`
	// Instance is random per process; it tells a process's own stale entry (left by its
	// expired session) from a different live process using the same id.
	Instance string `json:"instance"`
	// LeaseMillis is the member's delivery lease (see package lease); zero means the default.
	LeaseMillis int64 `json:"lease_ms,omitempty"`
	// MQTTProxy says MQTTAddr requires a PROXY protocol header: a prober that dials it
	// directly sends a LOCAL one, as a load balancer's check does.
	MQTTProxy bool `json:"mqtt_proxy,omitempty"`
	// Epoch is set by the coordinator: the entry's creation transaction id (ZooKeeper czxid,
	// etcd create revision), new at every registration, so that a delivery addressed to an
	// older one can be refused.
	Epoch int64 `json:"epoch"`
}

// Quarantine is a persistent mark that takes a member out of service until released.
type Quarantine struct {
	Node     string          `json:"node"`
	Reason   string          `json:"reason"`
	At       time.Time       `json:"at"`
	By       string          `json:"by"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// ParseQuarantine reads a mark stored under node. Damaged data still counts as a mark (with
// nothing but the node), since a mark's existence is what keeps a member out.
func ParseQuarantine(node string, data []byte) Quarantine {
	var q Quarantine
	if len(data) > 0 {
		_ = json.Unmarshal(data, &q)
	}
	q.Node = node
	return q
}

// Decoder reads one stored entry, named name and created at epoch: DecodeMember or DecodeMark.
type Decoder[T any] func(name string, data []byte, epoch int64) T

// DecodeMember reads a member entry stored under id at epoch (see Member.Epoch), whatever the
// data says; foreign or damaged data still makes a live entry, with nothing but the id.
func DecodeMember(id string, data []byte, epoch int64) Member {
	var m Member
	if err := json.Unmarshal(data, &m); err != nil || m.ID == "" {
		m = Member{}
	}
	m.ID, m.Epoch = id, epoch
	return m
}

// DecodeMark is ParseQuarantine in DecodeMember's shape, so that a backend lists members and
// marks alike (a mark's epoch means nothing).
func DecodeMark(node string, data []byte, _ int64) Quarantine { return ParseQuarantine(node, data) }

// State is where a registration stands.
//
// The timing of Suspended and Fenced rests on one fact that both backends share: a server
// that answers a request has heard from the session at or after the moment the request was
// sent, and it renews the session (ZooKeeper) or lease (etcd) no earlier than that. So if H is
// the send time of the most recent request the backend answered and T the session timeout or
// lease TTL the backend applies, the backend cannot end the session before H + T. Each
// backend keeps H fresh with a cheap request every T/6, even when nothing else is going on.
type State int

const (
	// Registering: not (or not again) registered yet; the registration is trying.
	Registering State = iota
	// Registered: the member entry exists and is owned by this registration's session, and
	// the backend answers.
	Registered
	// Suspended: the connection is reported lost, or a request has gone unanswered for
	// longer than T/3 (or nothing has been answered for T/2). The member still counts as live
	// (Status.Live) until it is Registered again or Fenced at the deadline below.
	Suspended
	// Fenced: the entry may be gone, or will be soon. Entered at H + T×(1−FenceMargin) at
	// the latest, before the backend can have ended the session, and at once when the session
	// ended or the entry belongs to another process. The member must act as if it were not
	// in the live set. The entry comes back under a new epoch, never the fenced one.
	Fenced
	// Quarantined: a quarantine mark stands and the entry is withdrawn; the registration
	// re-registers by itself once the mark is released.
	Quarantined
	// Closed: Deregister was called or the coordinator closed.
	Closed
)

// FenceMargin is the share of the session timeout by which a registration fences itself
// before the backend can expire it (see State). It absorbs clock-rate differences (parts per
// million), a late timer on a busy machine and the member's time to act on Fenced
// (milliseconds): a tenth, 200ms of a 2s timeout, is ample.
const FenceMargin = 0.1

// FenceAfter is how long after the last answered request a registration fences itself, for
// a backend timeout t: t×(1−FenceMargin).
func FenceAfter(t time.Duration) time.Duration {
	return t - time.Duration(float64(t)*FenceMargin)
}

var stateNames = [...]string{Registering: "registering", Registered: "registered", Suspended: "suspended",
	Fenced: "fenced", Quarantined: "quarantined", Closed: "closed"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Status is a registration's state, the epoch of the current entry (zero unless Registered or
// Suspended), the member's quarantine mark if one stands, and when (this process's clock) the
// state was entered.
type Status struct {
	State State
	Epoch int64
	Mark  *Quarantine
	Since time.Time
}

// Live reports whether the member may act as a live member: Registered, or Suspended (the
// fence deadline has not come yet).
func (s Status) Live() bool { return s.State == Registered || s.State == Suspended }

// Registration is one member's ephemeral entry, kept alive (and re-created with a new epoch
// after a session loss) until Deregister. All methods are safe for concurrent use.
type Registration interface {
	// Status returns the current status and a channel that is closed at the next change.
	Status() (Status, <-chan struct{})
	// Withdraw deletes the entry while a quarantine mark stands (the node does this after
	// its load-balancer grace period) and waits in Quarantined until the mark is released,
	// then registers again. Without a mark it does nothing.
	Withdraw(ctx context.Context) error
	// Deregister deletes the entry at once and stops re-registering. Idempotent.
	Deregister(ctx context.Context) error
}

// Leadership is held by an elected candidate until Done is closed.
type Leadership interface {
	// Done is closed when leadership is lost: the candidate's entry is gone, its session
	// ended, or the backend has not answered (or the link has been down) for a third of the
	// session timeout. Writes must still be fenced (Marks.SetQuarantine), since Done is
	// observed after the fact.
	Done() <-chan struct{}
	// Resign gives leadership up. Idempotent.
	Resign(ctx context.Context) error
}

// Coordinator is the cluster coordination backend: every part below, and Close. The roles
// take only the part they use, so a unit test can hand them a small fake or memcoord. All
// methods are safe for concurrent use.
//
// Channels returned by Watch methods deliver the full current state first and then after
// every change (a slow reader skips to the latest); they close when ctx is done or the
// coordinator closes.
type Coordinator interface {
	Registrar
	Membership
	Marks
	Elections

	// Close ends the session: every entry this process registered vanishes. Idempotent.
	Close() error
}

// Registrar registers members: what a node needs of the coordinator.
type Registrar interface {
	// Register creates this member's ephemeral entry and keeps it. It returns once the first
	// attempt has settled: registered, or waiting in Quarantined because a mark stands. It
	// fails with ErrDuplicate when another live process holds the id.
	Register(ctx context.Context, m Member) (Registration, error)
}

// Membership is the live member set.
type Membership interface {
	// Members lists the live members.
	Members(ctx context.Context) ([]Member, error)
	// WatchMembers delivers the live member set (see Coordinator for the channel).
	WatchMembers(ctx context.Context) (<-chan []Member, error)
}

// Marks are the quarantine marks.
type Marks interface {
	// SetQuarantine writes (or overwrites) a member's quarantine mark. With a non-nil
	// fence, the write happens only while fence is still the leader, atomically with a check
	// of its entry; otherwise it fails with ErrNotLeader.
	SetQuarantine(ctx context.Context, q Quarantine, fence Leadership) error
	// Release deletes a member's quarantine mark; ErrNotFound if there is none.
	Release(ctx context.Context, node string) error
	// Quarantines lists the standing marks.
	Quarantines(ctx context.Context) ([]Quarantine, error)
	// WatchQuarantines delivers the standing marks (see Coordinator for the channel).
	WatchQuarantines(ctx context.Context) (<-chan []Quarantine, error)
}

// Elections are named leader elections.
type Elections interface {
	Campaigner
	// Leader returns the current leader of the named election; ErrNotFound if none.
	Leader(ctx context.Context, election string) (string, error)
}

// MaxIDLen is the longest member id accepted.
const MaxIDLen = 64

// ValidateID checks a member (node) id: 1-64 characters of letters, digits, '.', '_' and
// '-', not "." or "..". The same rule serves ZooKeeper paths, etcd keys and metric labels.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("node id is empty")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("node id %.20q... is %d characters long; the maximum is %d", id, len(id), MaxIDLen)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("node id %q is not allowed", id)
	}
	if i := strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("node id %q has %q at position %d; use letters, digits, '.', '_' or '-'", id, id[i], i)
	}
	return nil
}

// EncodeQuarantine checks q's node id and encodes q as every backend stores it.
func EncodeQuarantine(q Quarantine) ([]byte, error) {
	if err := ValidateID(q.Node); err != nil {
		return nil, err
	}
	data, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("quarantine %s: %w", q.Node, err)
	}
	return data, nil
}
