package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/store"
)

// sendMany sends a fan-out (to_many or group) and prints what became of it: a summary of
// the recipients' outcomes, or a background job's progress until it ends.
func sendMany(ctx context.Context, e env, api, token string, req router.Request, asJSON, wait bool) error {
	var body json.RawMessage
	raw, err := postJSON(ctx, api+"/v1/messages", token, req, &body)
	if err != nil {
		return err
	}
	var list router.FanoutAnswer
	var job router.JobView
	if err := json.Unmarshal(raw, &job); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if job.Job == "" {
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		if asJSON {
			_, err := e.stdout.Write(raw)
			return err
		}
		return printFanout(e, list)
	}
	if !wait {
		if asJSON {
			_, err := e.stdout.Write(raw)
			return err
		}
		fmt.Fprintf(e.stdout, "job %s: sending to the %d members of group %s (follow it: GET /v1/jobs/%s)\n", job.Job, job.Total, job.Group, job.Job)
		return nil
	}
	return followJob(ctx, e, api, token, job.Job, asJSON)
}

func printFanout(e env, a router.FanoutAnswer) error {
	var c store.JobCounts
	for _, it := range a.Results {
		switch {
		case it.Error != "":
			c.Failed++
			fmt.Fprintf(e.stderr, "%s: not accepted (%d): %s\n", it.To, it.Code, it.Error)
		case it.Status == router.Delivered:
			c.Delivered++
		case it.Status == router.Expired:
			c.Expired++
		case it.Duplicate:
			c.Duplicates++
		default:
			c.Queued++
		}
	}
	fmt.Fprintf(e.stdout, "sent to %d clients (id %s): %d delivered, %d queued, %d duplicates, %d expired, %d not accepted\n",
		len(a.Results), a.ID, c.Delivered, c.Queued, c.Duplicates, c.Expired, c.Failed)
	if c.Failed > 0 {
		return fmt.Errorf("%d of %d messages were not accepted", c.Failed, len(a.Results))
	}
	return nil
}

// followJob prints a job's progress about every second until it ends (or ctx does).
func followJob(ctx context.Context, e env, api, token, id string, asJSON bool) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var v router.JobView
		raw, err := getJSON(ctx, api+"/v1/jobs/"+url.PathEscape(id), token, &v)
		if err != nil {
			return fmt.Errorf("follow job %s: %w", id, err)
		}
		if v.State != store.JobRunning {
			if asJSON {
				_, err := e.stdout.Write(raw)
				return err
			}
			fmt.Fprintf(e.stdout, "job %s %s in %.1fs: %d of %d sent: %d delivered, %d queued, %d duplicates, %d expired, %d not accepted\n",
				id, v.State, v.Elapsed, v.Sent, v.Total, v.Delivered, v.Queued, v.Duplicates, v.Expired, v.Failed)
			if v.State == store.JobFailed {
				return fmt.Errorf("job %s failed: %s", id, v.Error)
			}
			return nil
		}
		if !asJSON {
			fmt.Fprintf(e.stdout, "job %s running: %d of %d sent (%.1fs)\n", id, v.Sent, v.Total, v.Elapsed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
