package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// ledger counts every message of a test: submitted, accepted (with when its answer came),
// refused, and received, per client in arrival order. Its report says what was lost,
// duplicated and reordered, where "reordered" means a message accepted before a second
// was submitted arrived (first) after the second — the order the product promises.
type ledger struct {
	mu        sync.Mutex
	submitted int
	refused   int
	accepted  map[string][]*ledgerEntry // client -> accepted messages, in answer order
	byID      map[string]*ledgerEntry
	received  map[string][]string // client -> ids, in arrival order
	statuses  map[router.Outcome]int
}

type ledgerEntry struct {
	id, client          string
	submitted, answered time.Time
	status              router.Outcome
}

func newLedger() *ledger {
	return &ledger{accepted: map[string][]*ledgerEntry{}, byID: map[string]*ledgerEntry{},
		received: map[string][]string{}, statuses: map[router.Outcome]int{}}
}

// submit records that a message is about to be sent, and returns the time.
func (l *ledger) submit() time.Time {
	l.mu.Lock()
	l.submitted++
	l.mu.Unlock()
	return time.Now()
}

// accept records a 2xx answer.
func (l *ledger) accept(client, id string, submitted time.Time, status router.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.byID[id]; dup {
		return // a retry of a message already accepted
	}
	e := &ledgerEntry{id: id, client: client, submitted: submitted, answered: time.Now(), status: status}
	l.accepted[client] = append(l.accepted[client], e)
	l.byID[id] = e
	l.statuses[status]++
}

func (l *ledger) refuse() {
	l.mu.Lock()
	l.refused++
	l.mu.Unlock()
}

// receive records that client received id.
func (l *ledger) receive(client, id string) {
	l.mu.Lock()
	l.received[client] = append(l.received[client], id)
	l.mu.Unlock()
}

// tally is a ledger's report.
type tally struct {
	Submitted, Accepted, Refused, Received, Distinct int
	Lost, Duplicates, Reordered, Expired             int
	Statuses                                         map[router.Outcome]int
	Examples                                         []string
}

func (t tally) String() string {
	return fmt.Sprintf("submitted %d, accepted %d (%v), refused %d, received %d (distinct %d), lost %d, duplicates %d, reordered %d",
		t.Submitted, t.Accepted, t.Statuses, t.Refused, t.Received, t.Distinct, t.Lost, t.Duplicates, t.Reordered)
}

// report counts. Messages answered expired are not expected to arrive.
func (l *ledger) report() tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := tally{Submitted: l.submitted, Refused: l.refused, Statuses: map[router.Outcome]int{}}
	for k, v := range l.statuses {
		t.Statuses[k] = v
	}
	for client, acc := range l.accepted {
		first := map[string]int{}
		for i, id := range l.received[client] {
			t.Received++
			if _, seen := first[id]; seen {
				t.Duplicates++
				continue
			}
			first[id] = i
		}
		t.Distinct += len(first)
		for _, e := range acc {
			t.Accepted++
			if e.status == router.Expired {
				t.Expired++
				continue
			}
			if _, ok := first[e.id]; !ok {
				t.Lost++
				if len(t.Examples) < 5 {
					t.Examples = append(t.Examples, "lost "+e.id+" to "+client)
				}
			}
		}
		// a before b in the promise's sense: a answered before b was submitted.
		for _, b := range acc {
			pb, ok := first[b.id]
			if !ok {
				continue
			}
			for _, a := range acc {
				if a == b || !a.answered.Before(b.submitted) || a.status == router.Expired {
					continue
				}
				if pa, ok := first[a.id]; ok && pa > pb {
					t.Reordered++
					if len(t.Examples) < 5 {
						t.Examples = append(t.Examples, fmt.Sprintf("%s: %s (accepted first) arrived after %s", client, a.id, b.id))
					}
					break
				}
			}
		}
	}
	return t
}

// missing is how many accepted, unexpired messages have not arrived yet.
func (l *ledger) missing() int {
	t := l.report()
	return t.Lost
}

// waitAll waits until every accepted message has arrived, or fails after d.
func (l *ledger) waitAll(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, d, 20*time.Millisecond, func() error {
		if tl := l.report(); tl.Lost > 0 {
			return fmt.Errorf("%d accepted messages not received yet: %s", tl.Lost, strings.Join(tl.Examples, "; "))
		}
		return nil
	})
	return time.Since(start)
}

// sendOne posts one message to url and records it in the ledger; it returns the answer's
// HTTP status and result. Network errors count as refusals (not accepted).
func (l *ledger) sendOne(t *testing.T, url string, req msgReq) (int, router.Result) {
	t.Helper()
	b, _ := json.Marshal(req)
	at := l.submit()
	resp, err := http.Post(url+"/v1/messages", "application/json", bytes.NewReader(b))
	if err != nil {
		l.refuse()
		return 0, router.Result{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var res router.Result
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Errorf("answer %q: %v", raw, err)
			return resp.StatusCode, res
		}
		l.accept(req.To, res.ID, at, res.Status)
	} else {
		l.refuse()
	}
	return resp.StatusCode, res
}

// proxiedNode is a node whose internal address (what routers and other nodes dial) goes
// through a TCP proxy the test can cut.
type proxiedNode struct {
	*nodeProc
	internal *testenv.Proxy
}

// startProxiedNode starts a node whose --internal port is fixed and advertised through a
// proxy in front of it.
func (c *cluster) startProxiedNode(id string, extra ...string) *proxiedNode {
	c.t.Helper()
	ports, err := backends.FreePorts(1)
	if err != nil {
		c.t.Fatal(err)
	}
	bind := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p := testenv.StartProxy(c.t, bind)
	n := c.startNode(id, append([]string{"--internal", bind, "--advertise-internal", p.Addr}, extra...)...)
	return &proxiedNode{nodeProc: n, internal: p}
}
