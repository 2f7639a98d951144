package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
	"github.com/switchboard-mqtt/switchboard/store/redisstore"
)

// storeOf opens the cluster's Redis store under its prefix, to read mailboxes directly.
func (c *cluster) storeOf() *redisstore.Store {
	c.t.Helper()
	cfg := redisstore.DefaultConfig()
	cfg.Addr = c.redis
	cfg.Prefix = "sb" + c.root[4:12]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.New(ctx, cfg)
	if err != nil {
		c.t.Fatalf("open the cluster's store: %v", err)
	}
	c.t.Cleanup(func() { st.Close() })
	return st
}

// mailboxCounts reads every client's mailbox depth, 32 at a time, and returns how many
// mailboxes hold each depth.
func mailboxCounts(t *testing.T, st store.Store, ids []string) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	depths := make([]int, len(ids))
	var failed atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				d, err := st.Depth(ctx, ids[i])
				if err != nil {
					failed.Add(1)
					d = -1
				}
				depths[i] = d
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d depth reads failed", n)
	}
	counts := map[int]int{}
	for _, d := range depths {
		counts[d]++
	}
	return counts
}

// addGroup adds ids to group through the API, 10,000 at a time.
func addGroup(t *testing.T, r *routerProc, group string, ids []string) {
	t.Helper()
	for start := 0; start < len(ids); start += store.MaxGroupChange {
		part := ids[start:min(start+store.MaxGroupChange, len(ids))]
		var v router.GroupView
		if code := postJSON(t, r.url+"/v1/groups/"+group+"/members", router.GroupChange{Add: part}, &v); code != 200 || v.Size != start+len(part) {
			t.Fatalf("add %d members to %s: %d %+v", len(part), group, code, v)
		}
	}
}

// receiveOne checks that a client connecting to addr gets exactly the message with id
// want, and no other within quiet.
func receiveOne(t *testing.T, addr, client, want string, quiet time.Duration) error {
	cl, err := testenv.DialMQTT(addr, client, testenv.MQTTOptions{CleanStart: true})
	if err != nil {
		return fmt.Errorf("%s: connect: %w", client, err)
	}
	defer cl.Close()
	if err := cl.Subscribe("inbox/"+client, 1); err != nil {
		return fmt.Errorf("%s: subscribe: %w", client, err)
	}
	msg, err := cl.Next(15 * time.Second)
	if err != nil {
		return fmt.Errorf("%s: no message: %w", client, err)
	}
	if msg.ID != want {
		return fmt.Errorf("%s: received %s, want %s", client, msg.ID, want)
	}
	if extra, err := cl.Next(quiet); err == nil {
		return fmt.Errorf("%s: a second message %s", client, extra.ID)
	}
	return nil
}

// TestFanOutList: one request to 5,000 clients, 100 of them online on two nodes and the
// rest offline: the online ones get it delivered, the offline ones queued, each exactly
// once under its own id; offline ones that connect later receive it.
func TestFanOutList(t *testing.T) {
	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("fa"), c.startNode("fb")}
	r := c.startRouter("r1")
	const total, online = 5000, 100
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("fl-%05d", i)
	}
	clients := map[string]*testenv.MQTTClient{}
	for i := range online {
		id := ids[i*(total/online)] // spread among the list
		clients[id] = inboxClient(t, nodes[i%2].member.MQTTAddr, id)
	}
	var a router.FanoutAnswer
	start := time.Now()
	if code := r.send(t, map[string]any{"id": "list-1", "payload": "to many", "to_many": ids}, &a); code != 200 {
		t.Fatalf("fan-out: %d %+v", code, a.Results[:min(3, len(a.Results))])
	}
	took := time.Since(start)
	if len(a.Results) != total {
		t.Fatalf("%d results, want %d", len(a.Results), total)
	}
	var delivered, queued, other int
	for i, res := range a.Results {
		_, on := clients[ids[i]]
		switch {
		case res.To != ids[i] || res.ID != router.FanoutID("list-1", ids[i]):
			t.Fatalf("result %d: %+v", i, res)
		case on && res.Status == router.Delivered:
			delivered++
		case !on && res.Status == router.Queued && !res.Duplicate:
			queued++
		default:
			other++
			t.Errorf("result %d (online %v): %+v", i, on, res)
		}
	}
	// Every online client received exactly its message.
	received := 0
	for id, cl := range clients {
		msg, err := cl.Next(10 * time.Second)
		if err != nil || msg.ID != router.FanoutID("list-1", id) || string(msg.Payload) != "to many" {
			t.Fatalf("%s: %+v %v", id, msg, err)
		}
		received++
	}
	for id, cl := range clients {
		if extra, err := cl.Next(200 * time.Millisecond); err == nil {
			t.Fatalf("%s received a second message %s", id, extra.ID)
		}
	}
	st := c.storeOf()
	var offline []string
	for _, id := range ids {
		if _, on := clients[id]; !on {
			offline = append(offline, id)
		}
	}
	counts := mailboxCounts(t, st, offline)
	if counts[1] != total-online {
		t.Fatalf("offline mailboxes by depth: %v, want %d with 1", counts, total-online)
	}
	var mb router.MailboxView
	if code := getJSON(t, r.url+"/v1/clients/"+offline[7]+"/mailbox", &mb); code != 200 || mb.Depth != 1 || mb.Messages[0].ID != router.FanoutID("list-1", offline[7]) {
		t.Fatalf("mailbox of %s: %d %+v", offline[7], code, mb)
	}
	// A sample of the offline ones connect and receive it.
	for i, id := range offline[:30] {
		if err := receiveOne(t, nodes[i%2].member.MQTTAddr, id, router.FanoutID("list-1", id), 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("MEASURED fan-out to a list of %d in %v: %d delivered (of %d online, %d received), %d queued (%d mailboxes hold exactly 1), %d other; lost 0, duplicated 0; 30 offline connected and received theirs",
		total, took.Round(time.Millisecond), delivered, online, received, queued, counts[1], other)
}

// jobViews polls a job through r until it ends or within passes, and returns what it saw.
func jobViews(t *testing.T, r *routerProc, id string, within time.Duration, stop func(router.JobView) bool) []router.JobView {
	t.Helper()
	var seen []router.JobView
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var v router.JobView
		if code := getJSON(t, r.url+"/v1/jobs/"+id, &v); code != http.StatusOK {
			t.Fatalf("GET job %s: %d", id, code)
		}
		seen = append(seen, v)
		if v.State != store.JobRunning || (stop != nil && stop(v)) {
			return seen
		}
		time.Sleep(50 * time.Millisecond) // polling the job's progress, bounded by the deadline
	}
	t.Fatalf("job %s: not ended within %v; last %+v", id, within, seen[len(seen)-1])
	return nil
}

// TestFanOutGroupJob: a message to a group of 100,000 offline clients answers 202 with a
// job that reports its progress while it runs and ends done with every one queued: each
// mailbox holds exactly one message, and a sample of 200 clients receive it on connect.
func TestFanOutGroupJob(t *testing.T) {
	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("ga"), c.startNode("gb")}
	r := c.startRouter("r1")
	const total = 100_000
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("gj-%06d", i)
	}
	addGroup(t, r, "everyone", ids)
	var v router.JobView
	if code := r.send(t, map[string]any{"group": "everyone", "id": "all-1", "payload": "hello all"}, &v); code != http.StatusAccepted || v.Job == "" || v.Total != total {
		t.Fatalf("group send: %d %+v", code, v)
	}
	views := jobViews(t, r, v.Job, 5*time.Minute, nil)
	end := views[len(views)-1]
	progress := 0
	for _, pv := range views {
		if pv.State == store.JobRunning && pv.Sent > 0 && pv.Sent < total {
			progress++
		}
	}
	if end.State != store.JobDone || end.Total != total || end.Sent != total || end.Queued != total || end.Duplicates != 0 || end.Failed != 0 {
		t.Fatalf("job ended %+v", end)
	}
	if progress == 0 {
		t.Fatalf("no progress seen while the job ran (%d polls)", len(views))
	}
	counts := mailboxCounts(t, c.storeOf(), ids)
	if counts[1] != total {
		t.Fatalf("mailboxes by depth: %v, want all %d with 1", counts, total)
	}
	var mb router.MailboxView
	if code := getJSON(t, r.url+"/v1/clients/"+ids[4242]+"/mailbox", &mb); code != 200 || mb.Depth != 1 || mb.Messages[0].ID != router.FanoutID("all-1", ids[4242]) {
		t.Fatalf("mailbox of %s: %d %+v", ids[4242], code, mb)
	}
	received := 0
	for i := range 200 {
		id := ids[i*(total/200)+i%7]
		if err := receiveOne(t, nodes[i%2].member.MQTTAddr, id, router.FanoutID("all-1", id), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		received++
	}
	t.Logf("MEASURED group job of %d offline clients: done in %.1fs (%.0f messages queued/s), %d progress reports while running of %d polls; queued %d, duplicates %d, failed %d; %d mailboxes hold exactly 1 (lost 0, duplicated 0); %d of 200 sampled clients received it on connect",
		total, end.Elapsed, float64(total)/end.Elapsed, progress, len(views), end.Queued, end.Duplicates, end.Failed, counts[1], received)
}

// TestFanOutJobSurvivesRouterKill: the router running a group job is killed with SIGKILL
// midway; another router claims the job when the lease runs out and finishes it from the
// cursor. Nothing is lost: every mailbox holds exactly one message, and the page sent
// twice is counted as duplicates.
func TestFanOutJobSurvivesRouterKill(t *testing.T) {
	c := newCluster(t)
	c.startNode("ka")
	// A name of its own: the wait for its connections to leave Redis looks it up there.
	r1name := "r1-" + c.root[4:12]
	r1 := c.startRouter(r1name, "--job-lease", "3s")
	const total = 100_000
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("kj-%06d", i)
	}
	addGroup(t, r1, "killed", ids)
	var v router.JobView
	if code := r1.send(t, map[string]any{"group": "killed", "id": "kill-1", "payload": "survive"}, &v); code != http.StatusAccepted {
		t.Fatalf("group send: %d %+v", code, v)
	}
	views := jobViews(t, r1, v.Job, 5*time.Minute, func(v router.JobView) bool { return v.Sent >= total/4 })
	if views[len(views)-1].State != store.JobRunning {
		t.Fatalf("the job ended before the kill: %+v", views[len(views)-1])
	}
	// Kill r1 in the middle of a page: stopped (SIGSTOP), it is killed only if the member
	// after the recorded cursor already has its message, so the page is in flight (sent
	// at least in part, not recorded) and must be sent again.
	st := c.storeOf()
	for attempt := 0; ; attempt++ {
		if attempt == 500 {
			t.Fatal("never caught r1 in the middle of a page")
		}
		r1.Pause()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		j, err := st.Job(ctx, v.Job)
		var next int
		if err == nil && j.Cursor != "" {
			_, err = fmt.Sscanf(j.Cursor, "kj-%06d", &next)
			next++
		}
		depth := 0
		if err == nil && next < total {
			depth, err = st.Depth(ctx, ids[next])
		}
		cancel()
		if err != nil {
			t.Fatalf("read the job and the next mailbox: %v", err)
		}
		if j.State != store.JobRunning {
			t.Fatalf("the job ended before the kill: %+v", j)
		}
		if depth == 1 {
			break
		}
		r1.Resume()
		time.Sleep(5 * time.Millisecond) // let r1 run on; bounded by the attempts
	}
	r1.Kill()
	killed := time.Now()
	// What r1 wrote before it stopped may still reach Redis after the reads above (its
	// record of the page just sent among them), so the job and the page are read again
	// once Redis has closed r1's connections: then they are what r2 finds. The members
	// of the page after that cursor (1,000, the router's default) whose mailboxes hold
	// the message are the duplicates r2 must report.
	rc := redis.NewClient(&redis.Options{Addr: c.redis})
	defer rc.Close()
	name := " name=" + redisstore.ClientName("router", r1name) + " "
	testenv.Eventually(t, 20*time.Second, 10*time.Millisecond, func() error {
		list, err := rc.ClientList(context.Background()).Result()
		if err != nil {
			return err
		}
		if n := strings.Count(list, name); n > 0 {
			return fmt.Errorf("%d connections of r1 still open in Redis", n)
		}
		return nil
	})
	before, err := st.Job(context.Background(), v.Job)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	if before.Cursor != "" {
		if _, err := fmt.Sscanf(before.Cursor, "kj-%06d", &next); err != nil {
			t.Fatalf("cursor %q: %v", before.Cursor, err)
		}
		next++
	}
	page := mailboxCounts(t, st, ids[next:min(next+1000, total)])[1]
	r2 := c.startRouter("r2", "--job-lease", "3s")
	views = jobViews(t, r2, v.Job, 5*time.Minute, nil)
	end := views[len(views)-1]
	if end.State != store.JobDone || end.Total != total || end.Sent != total || end.Queued+end.Duplicates != total || end.Failed != 0 || end.Claims != 2 {
		t.Fatalf("job ended %+v; want done, %d sent, queued+duplicates = total, claimed twice", end, total)
	}
	if end.Duplicates != page {
		t.Fatalf("%d duplicates: want %d, the members of the page in flight at the kill whose mailboxes already held the message", end.Duplicates, page)
	}
	counts := mailboxCounts(t, st, ids)
	if counts[1] != total {
		t.Fatalf("mailboxes by depth: %v, want all %d with 1", counts, total)
	}
	t.Logf("MEASURED router killed mid-page at %d of %d recorded sent, %d of the page sent; resumed by r2 and done %.1fs after the kill; queued %d, duplicates %d (the page re-sent; deduplicated in the mailboxes), failed %d, claims %d; %d mailboxes hold exactly 1 (lost 0, duplicated 0)",
		before.Counts.Sum(), total, page, time.Since(killed).Seconds(), end.Queued, end.Duplicates, end.Failed, end.Claims, counts[1])
}

// TestFanOutCommands: `switchboard send --to a,b,c` sends to a list, `send --group` to a
// group through a job whose end it prints, and `bench fanout` measures a group's fan-out
// and checks it, all against `switchboard up` and its embedded store.
func TestFanOutCommands(t *testing.T) {
	dir := t.TempDir()
	startUpIn(t, "up", dir)
	var info struct {
		API string `json:"api"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, ".switchboard", "cluster.json"))
	if err != nil || json.Unmarshal(raw, &info) != nil || info.API == "" {
		t.Fatalf("cluster.json: %v %s", err, raw)
	}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runIn(t, dir, 2*time.Minute, args...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout %s\nstderr %s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
	if out := run(0, "send", "--to", "fc-a,fc-b,fc-c", "hello all three"); !strings.Contains(out, "sent to 3 clients") || !strings.Contains(out, "3 queued") {
		t.Fatalf("send --to a list: %s", out)
	}
	if out := run(1, "send", "--to", "fc-a,fc-a", "twice"); !strings.Contains(out, "to_many[1]") {
		t.Fatalf("send --to with a duplicate: %s", out)
	}
	ids := make([]string, 1500)
	for i := range ids {
		ids[i] = fmt.Sprintf("fcg-%04d", i)
	}
	var v router.GroupView
	if code := postJSON(t, info.API+"/v1/groups/fcg/members", router.GroupChange{Add: ids}, &v); code != 200 || v.Size != 1500 {
		t.Fatalf("make the group: %d %+v", code, v)
	}
	out := run(0, "send", "--group", "fcg", "hello group")
	if !strings.Contains(out, "done in") || !strings.Contains(out, "1500 of 1500 sent") || !strings.Contains(out, "1500 queued") {
		t.Fatalf("send --group: %s", out)
	}
	out = run(0, "bench", "fanout", "--clients", "3000", "--sample", "20")
	if !strings.Contains(out, "messages queued/s") || !strings.Contains(out, "queued 3000") || !strings.Contains(out, "sampled mailboxes: 20, wrong 0") {
		t.Fatalf("bench fanout: %s", out)
	}
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "messages queued/s") {
			line = strings.TrimSpace(l)
		}
	}
	t.Logf("MEASURED commands: send --to 3 queued 3, send --group queued 1500 of 1500, bench fanout: %s", line)
}
