package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-mqtt/switchboard/router"
)

func runSend(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("send", e)
	var (
		api, to, group, topic, ttl, id, apiToken string
		qos                                      int
		b64, asJSON, wait, receipt               bool
	)
	fs.StringVar(&api, "api", "http://127.0.0.1:8080", "router API base URL, or its host:port")
	fs.StringVar(&to, "to", "", "client id to send to, or a comma-separated list of them (to_many: each gets its own message)")
	fs.StringVar(&group, "group", "", "group to send to (instead of --to): every member gets its own message")
	fs.BoolVar(&wait, "wait", true, "with --group: follow a background job, printing its progress, until it ends")
	fs.StringVar(&topic, "topic", "", "topic (default: the client's inbox)")
	fs.IntVar(&qos, "qos", 1, "QoS: 0 or 1")
	fs.StringVar(&ttl, "ttl", "", "expiry, e.g. 90s or 24h (default: the router's)")
	fs.StringVar(&id, "id", "", "message id (optional; a retry with the same id is recognised)")
	fs.BoolVar(&receipt, "receipt", true, "ask for a delivery receipt (--receipt=false: none; see GET /v1/events)")
	var collapse, deliverAt, priority string
	fs.StringVar(&priority, "priority", "", "high or normal (the default): a client's queued high-priority messages are delivered first")
	fs.StringVar(&collapse, "collapse-key", "", "replace the client's queued message with the same key (collapse_key)")
	fs.StringVar(&deliverAt, "deliver-at", "", "hold the message back until this RFC 3339 time, or for a duration such as 10m (deliver_at)")
	fs.BoolVar(&b64, "base64", false, "PAYLOAD is base64")
	fs.BoolVar(&asJSON, "json", false, "print the router's JSON answer")
	secretVar(fs, &apiToken, "token", "the API's bearer token")
	if err := parse(fs, reorderFlags(fs, args)); err != nil {
		return err
	}
	warnSecrets(fs, stderrLogger(e))
	if fs.NArg() != 1 {
		return usagef("want exactly one PAYLOAD argument (use - to read it from standard input); got %d", fs.NArg())
	}
	payload := fs.Arg(0)
	if payload == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		payload = string(b)
	}
	if (to == "") == (group == "") {
		return usagef("give one of --to and --group")
	}
	req := router.Request{ID: id, To: to, Group: group, Topic: topic, QoS: &qos, CollapseKey: collapse, Priority: priority}
	if deliverAt != "" {
		if d, err := time.ParseDuration(deliverAt); err == nil {
			deliverAt = time.Now().Add(d).UTC().Format(time.RFC3339Nano)
		}
		req.DeliverAt = deliverAt
	}
	if !receipt {
		req.Receipt = &receipt // absent means on: send the field only to turn it off
	}
	if strings.Contains(to, ",") {
		req.To, req.ToMany = "", strings.Split(to, ",")
	}
	if b64 {
		req.PayloadBase64 = &payload
	} else {
		req.Payload = &payload
	}
	if ttl != "" {
		req.TTL, _ = json.Marshal(ttl)
	}
	if err := discoverAPI(fs, e, &api); err != nil {
		return err
	}
	if req.To == "" {
		return noRouterHint(sendMany(ctx, e, api, apiToken, req, asJSON, wait), api)
	}
	var res router.Result
	raw, err := postJSON(ctx, api+"/v1/messages", apiToken, req, &res)
	if err != nil {
		return noRouterHint(err, api)
	}
	if asJSON {
		_, err := e.stdout.Write(raw)
		return err
	}
	switch res.Status {
	case router.Delivered:
		fmt.Fprintf(e.stdout, "delivered to %s on %s (id %s)\n", to, res.Node, res.ID)
	case router.Queued:
		fmt.Fprintf(e.stdout, "queued in %s's mailbox, depth %d (id %s)\n", to, res.Depth, res.ID)
	default:
		fmt.Fprintf(e.stdout, "%s (id %s)\n", res.Status, res.ID)
	}
	return nil
}

func runMailbox(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("mailbox", e)
	var (
		api, to, apiToken string
		limit             int
		asJSON            bool
	)
	fs.StringVar(&api, "api", "http://127.0.0.1:8080", "router API base URL, or its host:port")
	fs.StringVar(&to, "to", "", "client id (required)")
	fs.IntVar(&limit, "limit", 10, "how many of the oldest messages to show")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	secretVar(fs, &apiToken, "token", "the API's bearer token")
	if err := parse(fs, args); err != nil {
		return err
	}
	warnSecrets(fs, stderrLogger(e))
	if to == "" {
		return usagef("--to is required")
	}
	if err := discoverAPI(fs, e, &api); err != nil {
		return err
	}
	var v router.MailboxView
	raw, err := getJSON(ctx, fmt.Sprintf("%s/v1/clients/%s/mailbox?limit=%d", api, url.PathEscape(to), limit), apiToken, &v)
	if err != nil {
		return noRouterHint(err, api)
	}
	if asJSON {
		_, err := e.stdout.Write(raw)
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d message(s) waiting\n", v.Client, v.Depth)
	for _, m := range v.Messages {
		left := time.Duration(m.ExpiresIn * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(e.stdout, "  %s  %s  qos %d  expires in %s  %q\n", m.ID, m.Topic, m.QoS,
			left, truncate(string(m.Payload), 60))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// noRouterHint adds to an error of send or mailbox whose connection to the API was refused
// where it tried and how to point the command elsewhere. The address is `up`'s --api
// default and the router role's --listen default.
func noRouterHint(err error, api string) error {
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	return fmt.Errorf("%w\nno router API listens at %s: give the right one with --api URL (or SWITCHBOARD_API); "+
		"`switchboard up` serves the API on http://127.0.0.1:8080 by default, and send and mailbox find it "+
		"themselves when run in the directory where up runs with its default --data-dir", err, api)
}

func postJSON(ctx context.Context, u, token string, body, out any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(req, token, out)
}

func getJSON(ctx context.Context, u, token string, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return doJSON(req, token, out)
}

func doJSON(req *http.Request, token string, out any) ([]byte, error) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		var ue *url.Error // it names the method and URL again
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb router.ErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
			return raw, fmt.Errorf("router answered %s: %s", resp.Status, eb.Error)
		}
		return raw, fmt.Errorf("router answered %s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("decode answer: %w", err)
	}
	return raw, nil
}
