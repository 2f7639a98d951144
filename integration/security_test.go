package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/internal/backends"
	"github.com/switchboard-mqtt/switchboard/internal/testenv"
	"github.com/switchboard-mqtt/switchboard/internal/tlsconf"
	"github.com/switchboard-mqtt/switchboard/router"
)

// apiCall posts body to the router with an optional bearer token.
func apiCall(t *testing.T, client *http.Client, url, token string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestAPIRequiresBearerToken: without a token or with a wrong one the API answers 401 and
// stores nothing; a token file change takes effect without a restart.
func TestAPIRequiresBearerToken(t *testing.T) {
	c := newCluster(t)
	c.startNode("sec-n")
	tokens := filepath.Join(t.TempDir(), "tokens")
	const good, other = "backend-token-0123456789", "rotated-token-9876543210"
	if err := os.WriteFile(tokens, []byte("# api tokens\nbackend "+good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports, _ := backends.FreePorts(1)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p := testenv.StartProc(t, "router-auth", append([]string{"router", "--listen", addr, "--api-tokens", tokens}, c.baseArgs()...)...)
	url := "http://" + addr
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	_ = p
	msg := msgReq{To: "guarded", Payload: "x"}
	for _, tok := range []string{"", "wrong-token-wrong-token", good + "x"} {
		var eb router.ErrorBody
		if code := apiCall(t, http.DefaultClient, url+"/v1/messages", tok, msg, &eb); code != 401 || eb.Error == "" {
			t.Fatalf("token %q: %d %+v, want 401", tok, code, eb)
		}
	}
	var res router.Result
	if code := apiCall(t, http.DefaultClient, url+"/v1/messages", good, msg, &res); code != 200 || res.Status != router.Queued || res.Depth != 1 {
		t.Fatalf("with the token: %d %+v, want queued at depth 1 (the refused ones stored nothing)", code, res)
	}
	// The CLI takes the token from --token (or SWITCHBOARD_TOKEN).
	if code, _, errOut := testenv.Run(t, 10*time.Second, "send", "--api", url, "--to", "guarded", "no token"); code == 0 ||
		!strings.Contains(errOut, "401") {
		t.Fatalf("send without a token: exit %d: %s", code, errOut)
	}
	if code, out, errOut := testenv.Run(t, 10*time.Second, "send", "--api", url, "--token", good, "--to", "guarded", "with token"); code != 0 ||
		!strings.Contains(out, "queued") {
		t.Fatalf("send with --token: exit %d: %s %s", code, out, errOut)
	}
	// Rotate: the new token works and the old one stops working, without a restart.
	if err := os.WriteFile(tokens, []byte("backend "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if code := apiCall(t, http.DefaultClient, url+"/v1/messages", other, msg, nil); code != 200 {
			return fmt.Errorf("new token: %d", code)
		}
		return nil
	})
	if code := apiCall(t, http.DefaultClient, url+"/v1/messages", good, msg, nil); code != 401 {
		t.Fatalf("old token after rotation: %d, want 401", code)
	}
	// Starting without tokens and without --no-auth is refused.
	code, _, errOut := testenv.Run(t, 10*time.Second, append([]string{"router", "--listen", "127.0.0.1:0"}, c.baseArgs()...)...)
	if code != 2 || !bytes.Contains([]byte(errOut), []byte("--api-tokens")) {
		t.Fatalf("router without tokens: exit %d: %s", code, errOut)
	}
}

// TestTLSEndToEnd: MQTT over TLS to a node, the API over HTTPS, and mutual TLS between router
// and node, with certificates the test generates; plain TCP is refused where TLS is required.
func TestTLSEndToEnd(t *testing.T) {
	c := newCluster(t)
	certs := testenv.GenerateCerts(t)
	tlsArgs := []string{"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey,
		"--internal-cert", certs.ServerCert, "--internal-key", certs.ServerKey, "--internal-ca", certs.CA}
	n := c.startNode("tls-n", tlsArgs...)
	ports, _ := backends.FreePorts(2)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	testenv.StartProc(t, "router-tls", append([]string{"router", "--listen", addr, "--no-auth", "--id", "rt",
		"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey,
		"--internal-cert", certs.ClientCert, "--internal-key", certs.ClientKey, "--internal-ca", certs.CA}, c.baseArgs()...)...)
	clientTLS, err := tlsconf.Client(certs.CA, "", "")
	if err != nil {
		t.Fatal(err)
	}
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: 10 * time.Second}
	url := "https://" + addr
	testenv.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := https.Get(url + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	cl := testenv.ConnectMQTT(t, n.member.MQTTAddr, "tls-dev", testenv.MQTTOptions{CleanStart: true, TLS: clientTLS})
	if err := cl.Subscribe("inbox/tls-dev", 1); err != nil {
		t.Fatal(err)
	}
	var res router.Result
	if code := apiCall(t, https, url+"/v1/messages", "", msgReq{To: "tls-dev", Payload: "secret"}, &res); code != 200 ||
		res.Status != router.Delivered {
		t.Fatalf("send over HTTPS: %d %+v, want delivered over the mutual-TLS channel", code, res)
	}
	if m, err := cl.Next(5 * time.Second); err != nil || string(m.Payload) != "secret" {
		t.Fatalf("TLS client: %+v %v", m, err)
	}

	// Plain TCP where TLS is required: the MQTT port, the API port, the internal port.
	if _, err := testenv.DialMQTT(n.member.MQTTAddr, "plain", testenv.MQTTOptions{CleanStart: true, ConnectTimeout: 3 * time.Second}); err == nil {
		t.Fatal("plain MQTT connection accepted by a TLS-only listener")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to the HTTPS API answered %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	// A TLS client without a certificate is refused by the internal listener (mutual TLS).
	conn, err := tls.Dial("tcp", n.member.InternalAddr, clientTLS)
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("internal listener accepted a TLS client without a certificate")
	}
	plain, err := net.DialTimeout("tcp", n.member.InternalAddr, 3*time.Second)
	if err == nil {
		_, _ = plain.Write([]byte("SBW1"))
		_ = plain.SetReadDeadline(time.Now().Add(3 * time.Second))
		if k, rerr := plain.Read(make([]byte, 64)); rerr == nil && k > 0 {
			t.Fatalf("internal listener answered a plain-TCP hello")
		}
		plain.Close()
	}
}
