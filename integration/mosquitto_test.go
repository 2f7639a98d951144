package integration

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/router"
)

// mosquittoSub runs mosquitto_sub (Debian's mosquitto-clients) on a client's inbox,
// printing each payload on a line; the test makes every payload the message's id.
type mosquittoSub struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startMosquittoSub(t *testing.T, l *ledger, addr, id string) *mosquittoSub {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("mosquitto_sub", "-V", "5", "-h", host, "-p", port, "-i", id, "-q", "1",
		"-t", "inbox/"+id, "-F", "%p", "-k", "10")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub (Debian package mosquitto-clients): %v", err)
	}
	m := &mosquittoSub{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.receive(id, strings.TrimSpace(sc.Text()))
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-m.done
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("mosquitto_sub %s stderr: %s", id, stderr.String())
		}
	})
	return m
}

// kill ends mosquitto_sub with SIGKILL: its TCP connection drops without DISCONNECT.
func (m *mosquittoSub) kill() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	_ = m.cmd.Wait()
}

// TestMosquittoSubscriber: mosquitto_sub receives directed messages live, through a
// router↔node partition (queued, and delivered while it stays connected), and after it is
// killed (SIGKILL, no DISCONNECT) from its mailbox when it starts again: nothing lost,
// nothing out of order.
func TestMosquittoSubscriber(t *testing.T) {
	c := newCluster(t)
	n := c.startProxiedNode("m1", shortLease...)
	r := c.startRouter("r1")
	l := newLedger()
	const id = "mosq"
	seq := 0
	send := func(want router.Outcome) {
		t.Helper()
		mid := fmt.Sprintf("mosq-%04d", seq)
		seq++
		code, res := l.sendOne(t, r.url, msgReq{To: id, ID: mid, Payload: mid})
		if code != 200 || (want != "" && res.Status != want) {
			t.Fatalf("%s: %d %+v, want %s", mid, code, res, want)
		}
	}
	sub := startMosquittoSub(t, l, n.member.MQTTAddr, id)
	waitOnline(t, r.url, id)
	send("") // it may arrive between mosquitto_sub's CONNECT and its SUBSCRIBE
	l.waitAll(t, 10*time.Second)
	for range 50 {
		send(router.Delivered)
	}
	n.internal.Cut()
	for range 10 {
		send(router.Queued)
	}
	l.waitAll(t, 10*time.Second)
	n.internal.Restore()
	sub.kill()
	waitOffline(t, r.url, id)
	for range 50 {
		send(router.Queued)
	}
	startMosquittoSub(t, l, n.member.MQTTAddr, id)
	l.waitAll(t, 20*time.Second)
	tl := l.report()
	t.Logf("MEASURED mosquitto_sub live, through a partition and after SIGKILL: %v", tl)
	if tl.Lost != 0 || tl.Reordered != 0 {
		t.Fatalf("%v: %v", tl, tl.Examples)
	}
}

func waitOnline(t *testing.T, api, id string) { t.Helper(); waitPresence(t, api, id, true) }

func waitOffline(t *testing.T, api, id string) { t.Helper(); waitPresence(t, api, id, false) }

func waitPresence(t *testing.T, api, id string, online bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		var cs router.Client
		getJSON(t, api+"/v1/clients/"+id, &cs)
		if cs.Online != online {
			return fmt.Errorf("%s online=%v, want %v", id, cs.Online, online)
		}
		return nil
	})
}
