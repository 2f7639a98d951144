package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/testenv"
)

// python3 is Debian's interpreter, which has Debian's python3-paho-mqtt (an interpreter
// earlier on PATH, such as pyenv's, does not).
func python3(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import paho.mqtt.client").Run() == nil {
			return path
		}
	}
	t.Fatal("no python3 with paho-mqtt (bash internal/backends/install.sh installs Debian's python3-paho-mqtt)")
	return ""
}

// TestClientExamples runs the client examples (examples/python, examples/node, examples/go)
// against a real cluster whose router has tokens on: each receives a message sent while it
// is connected, disconnects, and on reconnecting receives the one sent meanwhile from its
// mailbox, and exits 0.
func TestClientExamples(t *testing.T) {
	c := newCluster(t)
	n := c.startNode("ex1")
	c.startNode("ex2")
	r := c.startAuthRouter("ex-router")
	root := testenv.ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "examples", "node", "node_modules", "mqtt")); err != nil {
		t.Fatalf("MQTT.js is not installed for the Node example (run: npm ci --prefix examples/node): %v", err)
	}
	for _, ex := range []struct {
		name, dir string
		cmd       []string
	}{
		{"python", "examples/python", []string{python3(t), "receive.py", "example-python"}},
		{"node", "examples/node", []string{"node", "receive.mjs", "example-node"}},
		{"go", ".", []string{"go", "run", "./examples/go", "example-go"}},
	} {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ex.cmd[0], ex.cmd[1:]...)
			cmd.Dir = filepath.Join(root, ex.dir)
			cmd.Env = append(os.Environ(), "SWITCHBOARD_MQTT="+n.member.MQTTAddr, "SWITCHBOARD_API="+r.url, "SWITCHBOARD_TOKEN="+apiToken)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			out := stdout.String()
			t.Logf("%s example:\n%s", ex.name, out)
			if err != nil {
				t.Fatalf("%v: %v\nstderr:\n%s", ex.cmd, err, stderr.String())
			}
			id := ex.cmd[len(ex.cmd)-1]
			want := []string{
				"connected to " + n.member.MQTTAddr + " as " + id + "; subscribed to inbox/" + id,
				`sent "hello while online": delivered`,
				"received on inbox/" + id + ": hello while online (sb-id ",
				"disconnected",
				"the router sees " + id + " offline",
				`sent "hello while offline": queued`,
				"mailbox depth 1",
				"received on inbox/" + id + ": hello while offline (sb-id ",
				"done",
			}
			rest := out
			for _, w := range want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in this order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
