package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"

	"github.com/switchboard-mqtt/switchboard/router"
	"github.com/switchboard-mqtt/switchboard/watcher"
)

func runRouter(ctx context.Context, e env, args []string) error {
	fs := newRoleFlagSet("router", e)
	cfg := router.DefaultConfig()
	var (
		lo         logOptions
		zo         coordOptions
		ro         redisOptions
		listen     string
		id         string
		token      secretFlag
		hookSecret secretFlag
	)
	lo.register(fs)
	zo.register(fs)
	ro.register(fs)
	host, _ := os.Hostname()
	fs.StringVar(&listen, "listen", "127.0.0.1:8080", "HTTP API listen address")
	fs.StringVar(&id, "id", "router-"+host, "this router's name (in elections)")
	registerRouterFlags(fs, &cfg)
	registerHTTPFlags(fs, &cfg.HTTP)
	token.register(fs, "cluster-token", "the shared secret of the router/node channel (nodes off loopback require it, or mutual TLS)")
	hookSecret.register(fs, "webhook-secret", "the key that signs the receipts webhook's bodies (required with --webhook-url)")
	var (
		apiTLS, internalTLS tlsOptions
		tokensFile          string
		noAuth              bool
	)
	apiTLS.register(fs, "tls-", "the HTTP API (HTTPS only when set)")
	internalTLS.register(fs, "internal-", "the internal router/node channel")
	fs.StringVar(&tokensFile, "api-tokens", "", "file of bearer tokens the API accepts (one per line, `name token`); reloaded on change")
	fs.BoolVar(&noAuth, "no-auth", false, "serve the API without tokens (development only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.WireToken, err = token.get(); err != nil {
		return err
	}
	if cfg.Receipts.Webhook.Secret, err = hookSecret.get(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageError{routerFlags.rename(err)}
	}
	if tokensFile == "" && !noAuth {
		return usagef("--api-tokens FILE is required (or --no-auth for development)")
	}
	serverTLS, err := apiTLS.server("tls-")
	if err != nil {
		return err
	}
	if apiTLS.ca != "" {
		return usagef("--tls-ca is not used by the API; clients authenticate with bearer tokens")
	}
	if cfg.WireTLS, err = internalTLS.client("internal-"); err != nil {
		return err
	}
	log, err := lo.logger(e.stderr)
	if err != nil {
		return err
	}
	warnSecrets(fs, log)
	warnShortToken(log, cfg.WireToken)
	if cfg.WireToken == "" && internalTLS.cert == "" {
		// The router listens on no internal port, so it cannot refuse as a node does; it
		// can reach only nodes that accept an unauthenticated channel, on loopback.
		log.Warn("no --cluster-token-file and no --internal-cert: nodes off loopback (which require one) will refuse this router; " +
			"their clients' messages are then only queued")
	}
	if err := zo.validate(); err != nil {
		return err
	}
	ro.clientName = redisstore.ClientName("router", id)
	if _, err := ro.config(log); err != nil {
		return err
	}
	if err := e.validated(fs); err != nil {
		return err
	}
	st, err := ro.open(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := zo.open(ctx, log)
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	var tokens *router.Tokens
	if tokensFile != "" {
		if tokens, err = router.LoadTokens(tokensFile, log); err != nil {
			l.Close()
			return usageError{err}
		}
	} else {
		log.Warn("the API accepts requests without a token (--no-auth)")
	}
	srv, err := router.Start(ctx, cfg, router.Deps{Coord: c, Store: st, Listener: l, TLS: serverTLS, Tokens: tokens, Logger: log})
	if err != nil {
		l.Close()
		return err
	}
	// The router stands for the reaper election too: some process must reap.
	reaper, err := watcher.StartReaper(ctx, watcher.ReaperConfig{Candidate: id}, watcher.ReaperDeps{Coord: c, Store: st, Logger: log})
	if err != nil {
		_ = srv.Close()
		return err
	}
	log.Info("router listening", "addr", srv.Addr().String())
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	reaper.Close() // before the store and the coordinator close: defers run last first
	if err := srv.Close(); err != nil {
		return err
	}
	return srv.Err()
}

func registerRouterFlags(fs interface {
	BoolVar(*bool, string, bool, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	IntVar(*int, string, int, string)
	Int64Var(*int64, string, int64, string)
	StringVar(*string, string, string, string)
}, cfg *router.Config) {
	d := router.DefaultConfig()
	fs.StringVar(&cfg.InboxPrefix, "inbox-prefix", d.InboxPrefix, "default topic prefix: a message to c goes to <prefix>c")
	fs.DurationVar(&cfg.DefaultTTL, "default-ttl", d.DefaultTTL, "expiry of a message that gives none")
	fs.DurationVar(&cfg.MaxTTL, "max-ttl", d.MaxTTL, "longest expiry accepted")
	fs.IntVar(&cfg.MaxPayload, "max-payload", d.MaxPayload, "largest payload accepted (bytes)")
	fs.IntVar(&cfg.MailboxLimit, "mailbox-limit", d.MailboxLimit, "most messages in one client's mailbox")
	fs.IntVar(&cfg.MaxBatch, "max-batch", d.MaxBatch, "most messages in one batch request")
	fs.Int64Var(&cfg.MaxBody, "max-body", d.MaxBody, "largest batch request body (bytes)")
	fs.DurationVar(&cfg.AnswerGrace, "answer-grace", d.AnswerGrace,
		"how much longer than the max wait to wait for a node's answer before queueing the message (the outcome is then unknown)")
	fs.DurationVar(&cfg.ClockSkew, "clock-skew", 0, "testing: pretend this machine's wall clock is off by this much (expiry never depends on it)")
	fs.IntVar(&cfg.Fanout.MaxList, "max-fanout", d.Fanout.MaxList, "most client ids in one request's to_many")
	fs.IntVar(&cfg.Fanout.InlineGroup, "fanout-inline", d.Fanout.InlineGroup,
		"largest group sent to within the request (answered like to_many); a larger one is sent by a background job (202)")
	fs.DurationVar(&cfg.Fanout.JobLease, "job-lease", d.Fanout.JobLease,
		"how long a router holds a fan-out job without renewing it; another router resumes the job of one that died this long after")
	fs.DurationVar(&cfg.MaxMaxWait, "max-max-wait", d.MaxMaxWait, "largest max_wait a request may ask for")
	fs.DurationVar(&cfg.MaxWait, "max-wait", d.MaxWait,
		"how long a request waits for an online client's acknowledgement before the message is queued and answered queued (a request's max_wait overrides it)")
	fs.BoolVar(&cfg.Receipts.Enabled, "receipts", d.Receipts.Enabled,
		"keep delivery receipts (when the store keeps them): a request's receipt field, GET /v1/events, GET /v1/messages/{id}, the webhook")
	fs.DurationVar(&cfg.Receipts.Grace, "receipt-grace", d.Receipts.Grace,
		"how long after its expiry a message still pending is reported expired (a node's late acknowledgement may still come)")
	fs.DurationVar(&cfg.Receipts.Retention, "receipt-retention", d.Receipts.Retention,
		"how long receipts and messages' final states are kept (0: forever); the log is never trimmed past the webhook's cursor")
	fs.StringVar(&cfg.Receipts.Webhook.URL, "webhook-url", "",
		"URL that receives every receipt, in signed JSON batches (https; plain http only to loopback); one router at a time posts")
	fs.IntVar(&cfg.Receipts.Webhook.Batch, "webhook-batch", d.Receipts.Webhook.Batch, "most receipts in one webhook POST")
	fs.IntVar(&cfg.Receipts.Webhook.Attempts, "webhook-attempts", d.Receipts.Webhook.Attempts,
		"POSTs of one batch, with back-off from 200ms to 30s, before its receipts are counted as dead letters and skipped")
	fs.DurationVar(&cfg.Receipts.Webhook.Timeout, "webhook-timeout", d.Receipts.Webhook.Timeout, "longest one webhook POST may take")
	fs.IntVar(&cfg.MaxCollapseKeys, "max-collapse-keys", d.MaxCollapseKeys,
		"most distinct collapse keys one client's mailbox holds; a message with a new key past them is refused (507)")
	fs.DurationVar(&cfg.SchedulePoll, "schedule-poll", d.SchedulePoll,
		"how often the router queues scheduled messages (deliver_at) that came due")
}

// routerFlags names the flag behind each router.Config field the router's errors name.
var routerFlags = fieldFlags{
	"HTTP.ReadHeaderTimeout": "--read-header-timeout", "HTTP.ReadTimeout": "--read-timeout",
	"HTTP.WriteTimeout": "--write-timeout", "HTTP.IdleTimeout": "--idle-timeout",
	"HTTP.MaxConnections": "--max-connections", "MaxMaxWait": "--max-max-wait", "AnswerGrace": "--answer-grace",
	"Fanout.MaxList": "--max-fanout", "Fanout.InlineGroup": "--fanout-inline", "Fanout.JobLease": "--job-lease",
	"Receipts.Grace": "--receipt-grace", "Receipts.Retention": "--receipt-retention", "Receipts.Webhook.URL": "--webhook-url",
	"Receipts.Webhook.Secret": "--webhook-secret", "Receipts.Webhook.Batch": "--webhook-batch",
	"Receipts.Webhook.Attempts": "--webhook-attempts", "Receipts.Webhook.Timeout": "--webhook-timeout",
	"MaxCollapseKeys": "--max-collapse-keys", "SchedulePoll": "--schedule-poll",
}

// registerHTTPFlags defines the flags of the API's connection limits.
func registerHTTPFlags(fs *flag.FlagSet, h *router.HTTPConfig) {
	d := router.DefaultHTTPConfig()
	fs.DurationVar(&h.ReadHeaderTimeout, "read-header-timeout", d.ReadHeaderTimeout,
		"longest a connection may take to send a request's headers (a new connection that sends nothing is closed then)")
	fs.DurationVar(&h.ReadTimeout, "read-timeout", d.ReadTimeout, "longest a request, headers and body, may take to arrive")
	fs.DurationVar(&h.WriteTimeout, "write-timeout", d.WriteTimeout,
		"longest a request may take to be answered, counted from the end of its headers (0: --read-timeout + the longest answer (--max-max-wait, --answer-grace, store and lease bounds) + 10s; 1m31.2s at the defaults)")
	fs.DurationVar(&h.IdleTimeout, "idle-timeout", d.IdleTimeout, "a kept-alive connection with no new request for this long is closed")
	fs.IntVar(&h.MaxConnections, "max-connections", d.MaxConnections, "most open API connections; more wait in the listen backlog")
}
