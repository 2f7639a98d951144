package router

import "log/slog"

// repeating logs the failures of a step that a loop of the router retries on its own (a
// poll of the schedule, a sweep of the receipts, a claim of a job): the first failure of a
// run at WARN, the next ones at DEBUG, and the first success after them at INFO. While the
// store was out of reach each loop wrote a WARN line on every round, several a second
// from one router, none of them saying more than the first. Not safe for concurrent use:
// each loop has its own.
type repeating struct {
	what   string // the step, as the log names it
	failed int    // failures since the last success
}

func (r *repeating) fail(log *slog.Logger, err error, args ...any) {
	r.failed++
	args = append(args, "error", err)
	if r.failed == 1 {
		log.Warn(r.what+"; retrying (further failures are logged at debug until it works again)", args...)
		return
	}
	log.Debug(r.what, append(args, "failures", r.failed)...)
}

func (r *repeating) ok(log *slog.Logger) {
	if r.failed > 0 {
		log.Info(r.what+": works again", "failures", r.failed)
		r.failed = 0
	}
}
