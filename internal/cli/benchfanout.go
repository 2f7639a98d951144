package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
)

// fanoutBenchResult is what `bench fanout` measures.
type fanoutBenchResult struct {
	Kind    string    `json:"kind"` // fanout
	Mode    string    `json:"mode"` // group or list
	Started time.Time `json:"started"`
	Clients int       `json:"clients"`
	Size    int       `json:"payload_bytes"`
	// GroupSeconds is the time to add the clients to the group (group mode).
	GroupSeconds float64 `json:"group_seconds,omitempty"`
	// SendSeconds is from the send's request to the job's end (group) or the last answer
	// (list), on this machine's clock.
	SendSeconds float64 `json:"send_seconds"`
	// JobSeconds is the job's own elapsed time (group mode), on the routers' clocks.
	JobSeconds   float64         `json:"job_seconds,omitempty"`
	QueuedPerS   float64         `json:"queued_per_s"`
	Counts       store.JobCounts `json:"counts"`
	Claims       int             `json:"claims,omitempty"`
	Sampled      int             `json:"sampled"`
	SampleWrong  int             `json:"sample_wrong"`
	ProgressSeen int             `json:"progress_reports,omitempty"`
	OK           bool            `json:"ok"`
	Failures     []string        `json:"failures,omitempty"`
}

func benchFanout(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("bench fanout", e)
	var (
		api, token, mode, prefix string
		clients, size, sample    int
		asJSON, keep             bool
	)
	fs.StringVar(&api, "api", "http://127.0.0.1:8080", "router API base URL, or its host:port")
	fs.StringVar(&mode, "mode", "group", "group: one send to a group of --clients (a background job); list: to_many requests of up to 10,000")
	fs.IntVar(&clients, "clients", 100_000, "offline clients to fan out to")
	fs.IntVar(&size, "size", 64, "payload bytes")
	fs.IntVar(&sample, "sample", 100, "clients whose mailbox is read afterwards to check it holds the one message")
	fs.StringVar(&prefix, "prefix", "fan", "client id and group prefix (a random run id follows)")
	fs.BoolVar(&keep, "keep", false, "keep the group afterwards (group mode)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	secretVar(fs, &token, "token", "the API's bearer token, if it wants one")
	if err := parse(fs, args); err != nil {
		return err
	}
	warnSecrets(fs, stderrLogger(e))
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected arguments %q", fs.Args())
	case mode != "group" && mode != "list":
		return usagef("--mode %q: want group or list", mode)
	case clients <= 0:
		return usagef("--clients %d: must be positive", clients)
	case size < 0:
		return usagef("--size %d: must not be negative", size)
	case sample < 0:
		return usagef("--sample %d: must not be negative", sample)
	}
	if err := discoverAPI(fs, e, &api); err != nil {
		return err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := prefix + "-" + hex.EncodeToString(b[:])
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%07d", run, i)
	}
	payload := strings.Repeat("x", size)
	res := fanoutBenchResult{Kind: "fanout", Mode: mode, Started: time.Now().UTC(), Clients: clients, Size: size, OK: true}
	base := run + "-msg"
	var err error
	if mode == "group" {
		err = benchGroup(ctx, e, api, token, run, base, payload, ids, keep, asJSON, &res)
	} else {
		err = benchList(ctx, api, token, base, payload, ids, &res)
	}
	if err != nil {
		return err
	}
	if res.SendSeconds > 0 {
		res.QueuedPerS = float64(res.Counts.Queued+res.Counts.Delivered) / res.SendSeconds
	}
	if res.Counts.Sum() != clients || res.Counts.Failed > 0 || res.Counts.Duplicates > 0 {
		res.OK = false
		res.Failures = append(res.Failures, fmt.Sprintf("counts %+v for %d clients", res.Counts, clients))
	}
	// A sample of mailboxes, spread over the run, must each hold exactly the message.
	for k := range min(sample, clients) {
		id := ids[k*clients/max(1, min(sample, clients))]
		var v router.MailboxView
		if _, err := getJSON(ctx, fmt.Sprintf("%s/v1/clients/%s/mailbox?limit=2", api, url.PathEscape(id)), token, &v); err != nil {
			return fmt.Errorf("check %s's mailbox: %w", id, err)
		}
		res.Sampled++
		if v.Depth != 1 || len(v.Messages) != 1 || v.Messages[0].ID != router.FanoutID(base, id) {
			res.SampleWrong++
		}
	}
	if res.SampleWrong > 0 {
		res.OK = false
		res.Failures = append(res.Failures, fmt.Sprintf("%d of %d sampled mailboxes do not hold exactly the message", res.SampleWrong, res.Sampled))
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		if res.GroupSeconds > 0 {
			fmt.Fprintf(e.stdout, "group of %d built in %.2fs (%.0f members/s)\n", clients, res.GroupSeconds, float64(clients)/res.GroupSeconds)
		}
		fmt.Fprintf(e.stdout, "fan-out (%s) to %d offline clients: %.2fs, %.0f messages queued/s\n", mode, clients, res.SendSeconds, res.QueuedPerS)
		fmt.Fprintf(e.stdout, "  queued %d, delivered %d, duplicates %d, expired %d, failed %d", res.Counts.Queued, res.Counts.Delivered,
			res.Counts.Duplicates, res.Counts.Expired, res.Counts.Failed)
		if mode == "group" {
			fmt.Fprintf(e.stdout, "; job %.2fs on the router, %d progress reports, claims %d", res.JobSeconds, res.ProgressSeen, res.Claims)
		}
		fmt.Fprintf(e.stdout, "\n  sampled mailboxes: %d, wrong %d\n", res.Sampled, res.SampleWrong)
	}
	if !res.OK {
		return exitCodeError{code: exitError, err: fmt.Errorf("benchmark failed: %s", strings.Join(res.Failures, "; "))}
	}
	return nil
}

// benchGroup builds the group, sends to it and follows the job to its end.
func benchGroup(ctx context.Context, e env, api, token, group, base, payload string, ids []string, keep, quiet bool, res *fanoutBenchResult) error {
	start := time.Now()
	for from := 0; from < len(ids); from += store.MaxGroupChange {
		part := ids[from:min(from+store.MaxGroupChange, len(ids))]
		var v router.GroupView
		if _, err := postJSON(ctx, api+"/v1/groups/"+group+"/members", token, router.GroupChange{Add: part}, &v); err != nil {
			return fmt.Errorf("build group %s: %w", group, err)
		}
	}
	res.GroupSeconds = time.Since(start).Seconds()
	if !keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = deleteJSON(dctx, api+"/v1/groups/"+group, token)
		}()
	}
	start = time.Now()
	var job router.JobView
	if _, err := postJSON(ctx, api+"/v1/messages", token, router.Request{ID: base, Group: group, Payload: &payload}, &job); err != nil {
		return fmt.Errorf("send to group %s: %w", group, err)
	}
	if job.Job == "" {
		return fmt.Errorf("send to group %s: answered within the request, not by a job: use more --clients than the router's --fanout-inline", group)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var v router.JobView
		if _, err := getJSON(ctx, api+"/v1/jobs/"+url.PathEscape(job.Job), token, &v); err != nil {
			return fmt.Errorf("follow job %s: %w", job.Job, err)
		}
		if v.State != store.JobRunning {
			res.SendSeconds = time.Since(start).Seconds()
			res.JobSeconds, res.Counts, res.Claims = v.Elapsed, v.JobCounts, v.Claims
			if v.State == store.JobFailed {
				res.OK = false
				res.Failures = append(res.Failures, "job failed: "+v.Error)
			}
			return nil
		}
		if v.Sent > 0 {
			res.ProgressSeen++
		}
		if !quiet && res.ProgressSeen%10 == 1 {
			fmt.Fprintf(e.stderr, "job %s: %d of %d sent (%.1fs)\n", v.Job, v.Sent, v.Total, v.Elapsed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// benchList sends to_many requests of up to 10,000 ids, one after the other.
func benchList(ctx context.Context, api, token, base, payload string, ids []string, res *fanoutBenchResult) error {
	start := time.Now()
	for from := 0; from < len(ids); from += 10_000 {
		part := ids[from:min(from+10_000, len(ids))]
		var a router.FanoutAnswer
		if _, err := postJSON(ctx, api+"/v1/messages", token, router.Request{ID: base, ToMany: part, Payload: &payload}, &a); err != nil {
			return fmt.Errorf("send to_many: %w", err)
		}
		for _, it := range a.Results {
			switch {
			case it.Error != "":
				res.Counts.Failed++
			case it.Status == router.Delivered:
				res.Counts.Delivered++
			case it.Status == router.Expired:
				res.Counts.Expired++
			case it.Duplicate:
				res.Counts.Duplicates++
			default:
				res.Counts.Queued++
			}
		}
	}
	res.SendSeconds = time.Since(start).Seconds()
	return nil
}

func deleteJSON(ctx context.Context, u, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	return doJSON(req, token, &out)
}
