package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// apiToken is the bearer token of the routers these tests start with tokens on.
const apiToken = "integration-dashboard-token-0123456789"

// startAuthRouter runs `switchboard router` with an --api-tokens file holding apiToken and
// waits until it is healthy (/healthz needs no token).
func (c *cluster) startAuthRouter(name string, extra ...string) *routerProc {
	c.t.Helper()
	tokens := filepath.Join(c.t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("tests "+apiToken+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	ports, err := backends.FreePorts(1)
	if err != nil {
		c.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := append([]string{"router", "--listen", addr, "--id", name, "--api-tokens", tokens}, c.baseArgs()...)
	p := testenv.StartProc(c.t, name, append(args, extra...)...)
	r := &routerProc{Proc: p, url: "http://" + addr}
	testenv.Eventually(c.t, 20*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-p.Done():
			c.t.Fatalf("router exited:\n%s", p.Output())
		default:
		}
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	return r
}

// sendWithToken posts one message to a router with tokens on and returns the answer.
func (r *routerProc) sendWithToken(t *testing.T, to, payload string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"to": to, "payload": payload})
	req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/messages", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("send to %s: %d %v %v", to, resp.StatusCode, out, err)
	}
	return out
}

// browser is a headless Chromium (Debian's chromium package) driven with chromedp.
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	js  []string // exceptions and console errors the page raised
}

// startBrowser starts Chromium with a fresh profile; it is stopped at cleanup.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (bash internal/backends/install.sh installs Debian's chromium): %v", err)
	}
	var out testenv.Buffer
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// This machine's network reaches only loopback: nothing may try to go elsewhere.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
		chromedp.CombinedOutput(&out),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium's output:\n%s", testenv.LastLines(out.String(), 40))
		}
	})
	b := &browser{ctx: ctx}
	// Start the browser and record what the page raises.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.String())
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		var s string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			s = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				s += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			s = "console.error:"
			for _, a := range ev.Args {
				s += " " + string(a.Value) + a.Description
			}
		default:
			return
		}
		b.mu.Lock()
		b.js = append(b.js, s)
		b.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs actions, failing the test on error.
func (b *browser) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS waits until the JavaScript expression is true. A poll that loses its page's
// JavaScript context (a navigation replaced it as the poll began: Chromium answers "Cannot
// find context with specified id") is started again in the new one, within the same time.
func (b *browser) waitJS(t *testing.T, what string, within time.Duration, expr string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(time.Until(deadline)),
			chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		if strings.Contains(err.Error(), "Cannot find context with specified id") && time.Until(deadline) > 50*time.Millisecond {
			time.Sleep(50 * time.Millisecond) // the polling interval: the new context is being set up
			continue
		}
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: not within %v (%v); the page shows:\n%s", what, within, err, text)
	}
}

// text returns the text of the first element that matches the CSS selector.
func (b *browser) text(t *testing.T, css string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, css)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.js...)
}

// TestDashboardInChromium: a 3-node cluster with a router (tokens on) and a monitor, all
// real processes; the dashboard in a real headless Chromium asks for the token, shows the
// three nodes, the monitor's probes and the mailboxes, shows a quarantine within a few
// seconds of `switchboard quarantine`, finds a client and sends it a message. It writes a
// screenshot: always to the test's directory, and to docs/dashboard.png with
// SWITCHBOARD_WRITE_SCREENSHOT=1.
func TestDashboardInChromium(t *testing.T) {
	c := newCluster(t)
	nodes := []*nodeProc{c.startNode("node-1", graceArgs...), c.startNode("node-2", graceArgs...), c.startNode("node-3", graceArgs...)}
	r := c.startAuthRouter("router-1")
	mon := c.startMonitor("monitor-1")
	mon.waitLeading(t, 20*time.Second)
	// Something to show: connected clients, and mailboxes of clients that are away.
	for i, n := range nodes {
		for j := range 2 + i {
			cl := testenv.ConnectMQTT(t, n.member.MQTTAddr, fmt.Sprintf("sensor-%d%d", i+1, j), testenv.MQTTOptions{})
			if err := cl.Subscribe("inbox/"+cl.ID, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, away := range []string{"truck-17", "truck-04", "kiosk-9", "meter-2231", "meter-0007"} {
		for k := range 12 - 2*i {
			r.sendWithToken(t, away, fmt.Sprintf("reading %d", k))
		}
	}
	r.sendWithToken(t, "sensor-10", "hello sensor") // delivered: counts in the rates

	b := startBrowser(t)
	b.do(t, "open the dashboard", chromedp.Navigate(r.url+"/"))
	if u, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(u, "/ui") {
		t.Fatalf("/ led to %s, want /ui", u)
	}
	// Tokens are on: the page asks for one before it shows anything.
	b.waitJS(t, "the token dialog", 10*time.Second, `document.getElementById("login").open`)
	if n := b.text(t, "#nodes tbody"); n != "" {
		t.Fatalf("the page shows nodes before it has a token: %q", n)
	}
	b.do(t, "give the token",
		chromedp.SendKeys(chromedp.ID("token"), apiToken),
		chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.waitJS(t, "three nodes", 15*time.Second, `document.querySelectorAll("#nodes tbody tr[data-node]").length === 3`)
	if stored, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`sessionStorage.getItem("switchboard.token")`)); stored != apiToken {
		t.Fatalf("token in sessionStorage: %q", stored)
	}
	for _, n := range nodes {
		row := b.text(t, fmt.Sprintf(`#nodes tr[data-node=%q]`, n.id))
		if !strings.Contains(row, "registered") || !strings.Contains(row, n.member.MQTTAddr) {
			t.Fatalf("row of %s: %q", n.id, row)
		}
	}
	b.waitJS(t, "the monitor's probes", 15*time.Second, `document.querySelectorAll("#probes tbody tr[data-node]").length === 3`)
	if s := b.text(t, "#monitor-summary"); !strings.Contains(s, "monitor-1") {
		t.Fatalf("monitor summary %q", s)
	}
	b.waitJS(t, "the deepest mailboxes", 15*time.Second, `document.querySelector("#deepest tbody a") !== null`)
	if s := b.text(t, "#deepest tbody tr"); !strings.Contains(s, "truck-17") || !strings.Contains(s, "12") {
		t.Fatalf("deepest mailbox %q, want truck-17 with 12", s)
	}

	// A quarantine by hand: on the page within a few seconds.
	start := time.Now()
	if code, out, errOut := testenv.Run(t, 30*time.Second, "quarantine", "node-3", "--reason", "disk errors on sdb",
		"--zk", c.zk, "--zk-root", c.root); code != 0 {
		t.Fatalf("quarantine: %d %s %s", code, out, errOut)
	}
	b.waitJS(t, "the quarantine", 5*time.Second, `document.querySelector('#quarantines [data-node="node-3"]') !== null`)
	shown := time.Since(start)
	if card := b.text(t, `#quarantines [data-node="node-3"]`); !strings.Contains(card, "disk errors on sdb") || !strings.Contains(card, "by ") {
		t.Fatalf("quarantine card %q", card)
	}
	b.waitJS(t, "node-3 shown as quarantined", 10*time.Second,
		`(document.querySelector('#nodes tr[data-node="node-3"]') || {innerText: ""}).innerText.includes("quarantined")`)
	t.Logf("MEASURED dashboard: quarantine shown %v after `switchboard quarantine` started", shown.Round(time.Millisecond))

	// Find a client and send it a message.
	b.do(t, "look up sensor-21",
		chromedp.SendKeys(chromedp.ID("lookup-id"), "sensor-21"),
		chromedp.Click(chromedp.CSS(`#lookup-form button`)))
	b.waitJS(t, "the client's whereabouts", 10*time.Second, `(document.getElementById("lookup-where") || {innerText: ""}).innerText.includes("online on node-2")`)
	b.do(t, "send to truck-17",
		chromedp.SetValue(chromedp.ID("send-to"), "truck-17"),
		chromedp.Click(chromedp.CSS(`#send-form button`)))
	b.waitJS(t, "the send answer", 10*time.Second, `document.getElementById("send-result").innerText.includes("queued")`)
	b.do(t, "look up truck-17",
		chromedp.SetValue(chromedp.ID("lookup-id"), "truck-17"),
		chromedp.Click(chromedp.CSS(`#lookup-form button`)))
	b.waitJS(t, "truck-17's mailbox", 10*time.Second,
		`(document.getElementById("lookup-where") || {innerText: ""}).innerText.includes("13 waiting") && document.querySelectorAll("#lookup-mailbox tbody tr").length === 8`)
	b.waitJS(t, "node-3 out of the live set", 10*time.Second, `document.querySelector('#nodes tr.gone[data-node="node-3"]') !== null`)
	b.waitJS(t, "live updates", 5*time.Second, `document.getElementById("conn").innerText === "live"`)

	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 1000 || img.Bounds().Dy() < 600 {
		t.Fatalf("screenshot: %d bytes, not a PNG of the page: %v", len(shot), err)
	}
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s: %dx%d, %d bytes", out, img.Bounds().Dx(), img.Bounds().Dy(), len(shot))
	if os.Getenv("SWITCHBOARD_WRITE_SCREENSHOT") == "1" {
		docs := filepath.Join(testenv.ModuleRoot(t), "docs", "dashboard.png")
		if err := os.WriteFile(docs, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", docs)
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Fatalf("the page raised errors:\n%s", strings.Join(errs, "\n"))
	}
}
