package cli

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/redisstore"

	"github.com/switchboard-mqtt/switchboard/node"
)

func runNode(ctx context.Context, e env, args []string) error {
	fs := newRoleFlagSet("node", e)
	d := node.DefaultConfig()
	cfg := d
	var (
		lo    logOptions
		zo    coordOptions
		ro    redisOptions
		token secretFlag
		admin adminOptions
	)
	lo.register(fs)
	zo.register(fs)
	ro.register(fs)
	fs.StringVar(&cfg.ID, "id", "", "node id, unique in the cluster (letters, digits, '.', '_', '-')")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", d.MQTTAddr, "MQTT listen address")
	fs.StringVar(&cfg.InternalAddr, "internal", d.InternalAddr, "listen address for routers and other nodes")
	fs.StringVar(&cfg.AdminAddr, "admin", d.AdminAddr, "HTTP address for /healthz, /metrics (and /debug/pprof with --pprof)")
	admin.register(fs)
	fs.StringVar(&cfg.Advertise, "advertise", "", "host to register for addresses bound to all interfaces (default: hostname)")
	fs.StringVar(&cfg.AdvertiseInternal, "advertise-internal", "",
		"host:port routers and other nodes dial for --internal, when it differs from the bound address (NAT, port mapping, proxy)")
	fs.StringVar(&cfg.DataDir, "data-dir", d.DataDir, "directory whose free space the readiness check watches")
	fs.StringVar(&cfg.InboxPrefix, "inbox-prefix", d.InboxPrefix, "inbox topic prefix: client c's inbox is <prefix>c")
	token.register(fs, "cluster-token", "the shared secret of the router/node channel (required, or mutual TLS, when --internal is not loopback)")
	fs.DurationVar(&cfg.MaxWait, "max-wait", d.MaxWait,
		"how long a routed message waits for the client's PUBACK before it is queued in the mailbox and answered queued (a request's max_wait overrides it)")
	fs.IntVar(&cfg.Window, "window", d.Window, "most directed QoS 1 messages in flight to one client (also bounded by its receive maximum)")
	fs.DurationVar(&cfg.Lease.Duration, "lease", d.Lease.Duration,
		"delivery lease: a takeover or queued message this node could not be told of directly takes effect at most this long later")
	fs.DurationVar(&cfg.ClockSkew, "clock-skew", 0, "testing: pretend this machine's wall clock is off by this much (expiry never depends on it)")
	fs.DurationVar(&cfg.Lease.Interval, "lease-interval", d.Lease.Interval, "how often the node takes its notices (at most half the lease)")
	fs.IntVar(&cfg.MailboxLimit, "mailbox-limit", d.MailboxLimit, "most messages in one client's mailbox")
	fs.DurationVar(&cfg.AuditInterval, "presence-audit", d.AuditInterval,
		"how often every connected client's presence is checked against the store and put right (0: never)")
	fs.DurationVar(&cfg.RouteSyncTimeout, "route-sync-timeout", d.RouteSyncTimeout,
		"how long a SUBACK waits for every other node to learn the subscription (publishes on any node after the SUBACK then reach it)")
	fs.DurationVar(&cfg.Quarantine.Grace, "quarantine-grace", d.Quarantine.Grace,
		"when quarantined, stay in the live set this long (healthz 503) so the load balancer drops the node first")
	fs.IntVar(&cfg.Quarantine.MoveRate, "move-rate", d.Quarantine.MoveRate, "clients a second moved off a quarantined node")
	var ao authOptions
	ao.register(fs)
	var mqttTLS, internalTLS, wssTLS tlsOptions
	mqttTLS.register(fs, "tls-", "the MQTT listener (TLS only when set)")
	fs.StringVar(&cfg.WSAddr, "ws", "", "listen address for MQTT over WebSocket, ws:// (empty: off)")
	fs.StringVar(&cfg.WSSAddr, "wss", "", "listen address for MQTT over WebSocket over TLS, wss:// (empty: off); its certificate is --wss-cert/--wss-key, else --tls-cert/--tls-key")
	wssTLS.register(fs, "wss-", "the WebSocket over TLS listener (default: the --tls-* files)")
	var proxy proxyOptions
	proxy.register(fs)
	internalTLS.register(fs, "internal-", "the internal router/node channel")
	fs.Float64Var(&cfg.Limits.ConnRatePerIP, "conn-rate", d.Limits.ConnRatePerIP, "new MQTT connections a second per source address (0: no limit)")
	fs.IntVar(&cfg.Limits.ConnBurstPerIP, "conn-burst", d.Limits.ConnBurstPerIP, "burst of new connections per source address")
	var maxInflight uint
	fs.UintVar(&maxInflight, "max-inflight", uint(d.Limits.MaxInflight), "most unacknowledged QoS 1/2 messages held for one client (at most 65535)")
	var maxPacket uint
	fs.UintVar(&maxPacket, "max-packet-size", uint(d.Limits.MaxPacketSize), "largest MQTT packet accepted (bytes)")
	fs.Int64Var(&cfg.Limits.MaxClients, "max-clients", d.Limits.MaxClients, "most concurrent MQTT connections")
	var writesPending int
	fs.IntVar(&writesPending, "writes-pending", int(d.Limits.WritesPending),
		"per-connection queue of the broker's own pub/sub messages (8 bytes a slot, allocated with each connection); when full, QoS>0 ones go to the mailbox")
	fs.IntVar(&cfg.Limits.ReadBuffer, "read-buffer", d.Limits.ReadBuffer,
		"per-connection read buffer (bytes, allocated with each connection); larger packets are read past it")
	fs.DurationVar(&cfg.Limits.ConnectTimeout, "connect-timeout", d.Limits.ConnectTimeout,
		"time from accept for the TLS handshake and the CONNECT to arrive; the connection is closed after it")
	var maxConnect uint
	fs.UintVar(&maxConnect, "max-connect-size", uint(d.Limits.MaxConnectSize),
		"largest CONNECT accepted (remaining length in bytes, Will included); a larger one is closed before it is read")
	fs.IntVar(&cfg.Limits.MaxPending, "max-pending-connects", d.Limits.MaxPending,
		"most connections not yet authenticated; more are closed at accept (open connections are capped at --max-clients plus this)")
	fs.IntVar(&cfg.Limits.MaxPendingPerIP, "max-pending-connects-per-ip", d.Limits.MaxPendingPerIP,
		"most connections not yet authenticated from one source address (0: no limit)")
	fs.IntVar(&cfg.Limits.AuthConcurrency, "auth-concurrency", d.Limits.AuthConcurrency,
		"credential checks (bcrypt) run at once: half the cores, at least 1, unless set")
	fs.DurationVar(&cfg.Limits.AuthWait, "auth-wait", d.Limits.AuthWait,
		"how long a CONNECT waits for a credential check slot before it is refused as busy")
	fs.IntVar(&cfg.Limits.AuthFailuresPerIP, "auth-failures-per-ip", d.Limits.AuthFailuresPerIP,
		"failed authentications a minute from one source address before its CONNECTs are refused unchecked (0: no limit)")
	perIPExempt := fs.String("per-ip-exempt", "",
		"comma-separated addresses or CIDR prefixes the per-address limits (--conn-rate, --max-pending-connects-per-ip, --auth-failures-per-ip) "+
			"do not apply to: give the monitors', so that a client sharing their address cannot get their probes refused")
	fs.IntVar(&cfg.Limits.MaxSubscriptions, "max-subscriptions", d.Limits.MaxSubscriptions,
		"most topic filters one session may hold, its inbox not counted; more are refused 0x97 Quota exceeded")
	fs.IntVar(&cfg.Limits.MaxFilterLength, "max-filter-length", d.Limits.MaxFilterLength,
		"longest topic filter a client may subscribe to, in bytes; longer ones are refused 0x97 Quota exceeded")
	var maxSession time.Duration
	fs.DurationVar(&maxSession, "max-session-expiry", time.Duration(d.Limits.MaxSessionExpiry)*time.Second, "cap on a client's session expiry interval")
	var maxKeepAlive time.Duration
	fs.DurationVar(&maxKeepAlive, "max-keepalive", 0,
		"server keep-alive: the longest a client may use; MQTT 5 clients asking for more or for none are told this (CONNACK Server Keep Alive) and disconnected after 1.5x of it silent, MQTT 3.1.1 ones refused (0x02) (0: the client's own)")
	var minDisk uint64
	fs.Uint64Var(&minDisk, "min-free-disk-mb", d.Health.MinFreeDisk>>20, "least free MiB on --data-dir before the node reports itself unready")
	var maxMem uint64
	fs.Uint64Var(&maxMem, "max-memory-mb", 0, "heap MiB above which the node reports itself unready (0: no limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.WireToken, err = token.get(); err != nil {
		return err
	}
	if cfg.Pprof, cfg.AdminToken, err = admin.get(); err != nil {
		return err
	}
	cfg.Limits.MaxPacketSize = uint32(maxPacket)
	if maxConnect > 268_435_455 {
		return usagef("--max-connect-size %d: at most 268435455 (MQTT's largest remaining length)", maxConnect)
	}
	cfg.Limits.MaxConnectSize = uint32(maxConnect)
	if maxInflight > 65535 {
		return usagef("--max-inflight %d: at most 65535", maxInflight)
	}
	cfg.Limits.MaxInflight = uint16(maxInflight)
	if writesPending < 1 || writesPending > 1<<20 {
		return usagef("--writes-pending %d: between 1 and 1048576", writesPending)
	}
	cfg.Limits.WritesPending = int32(writesPending)
	cfg.Limits.MaxSessionExpiry = uint32(maxSession / time.Second)
	if maxKeepAlive < 0 || maxKeepAlive%time.Second != 0 || maxKeepAlive > node.MaxServerKeepAlive*time.Second {
		return usagef("--max-keepalive %v: whole seconds, 0 to %v (MQTT keep-alives are seconds; mochi's deadline wraps above it)",
			maxKeepAlive, node.MaxServerKeepAlive*time.Second)
	}
	cfg.Limits.MaxKeepAlive = uint16(maxKeepAlive / time.Second)
	cfg.Health.MinFreeDisk = minDisk << 20
	cfg.Health.MaxMemory = maxMem << 20
	if cfg.MQTTTLS, err = mqttTLS.server("tls-"); err != nil {
		return err
	}
	if cfg.WSTLS, err = wssTLS.server("wss-"); err != nil {
		return err
	}
	if cfg.WSTLS == nil && cfg.WSSAddr != "" {
		cfg.WSTLS = cfg.MQTTTLS
	}
	if cfg.ProxyProtocol, cfg.ProxyTrusted, err = proxy.get(); err != nil {
		return err
	}
	if cfg.Limits.PerIPExempt, err = parsePrefixes("per-ip-exempt", *perIPExempt); err != nil {
		return err
	}
	if cfg.InternalTLS, err = internalTLS.server("internal-"); err != nil {
		return err
	}
	if cfg.PeerTLS, err = internalTLS.client("internal-"); err != nil {
		return err
	}
	log, err := lo.logger(e.stderr)
	if err != nil {
		return err
	}
	warnSecrets(fs, log)
	warnShortToken(log, cfg.WireToken)
	authn, err := ao.open(cfg.InboxPrefix, log)
	if err != nil {
		return nodeFlagError(err)
	}
	cfg.Auth = authn
	if err := cfg.Validate(); err != nil {
		return usageError{nodeFlagError(err)}
	}
	if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
		// Its free space is a readiness check: a node started on a directory that is not
		// there was registered and unready for good, and said nothing.
		if err == nil {
			err = errors.New("not a directory")
		}
		return usagef("--data-dir %q: %v", cfg.DataDir, err)
	}
	if err := zo.validate(); err != nil {
		return err
	}
	ro.clientName = redisstore.ClientName("node", cfg.ID)
	if _, err := ro.config(log); err != nil {
		return err
	}
	if err := e.validated(fs); err != nil {
		return err
	}
	authn.Start(ctx)
	defer authn.Wait()
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
	n, err := node.Start(ctx, cfg, node.Deps{Coord: c, Store: st, Logger: log})
	if err != nil {
		return nodeFlagError(err)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return n.Close(context.Background())
}

// nodeFlags names the flag behind each node.Config field the node's errors name.
var nodeFlags = fieldFlags{
	"ID": "--id", "MQTTAddr": "--mqtt", "InternalAddr": "--internal", "AdminAddr": "--admin",
	"AdvertiseInternal": "--advertise-internal", "WSAddr": "--ws", "WSSAddr": "--wss",
	"WSTLS": "--wss-cert and --wss-key, or --tls-cert and --tls-key", "ProxyProtocol": "--proxy-protocol",
	"ProxyTrusted": "--proxy-trusted", "WireToken": "--cluster-token-file (or SWITCHBOARD_CLUSTER_TOKEN)",
	"InternalTLS": "--internal-cert, --internal-key and --internal-ca", "AdminToken": "--admin-token-file",
	"Pprof": "--pprof", "Limits.MaxKeepAlive": "--max-keepalive", "InboxPrefix": "--inbox-prefix", "DataDir": "--data-dir",
	"Limits.MaxPacketSize": "--max-packet-size", "Limits.MaxClients": "--max-clients",
	"Limits.MaxSessionExpiry": "--max-session-expiry", "Limits.MaxSubscriptions": "--max-subscriptions", "Limits.MaxFilterLength": "--max-filter-length", "Limits.MaxInflight": "--max-inflight",
	"Limits.WritesPending": "--writes-pending", "Limits.ReadBuffer": "--read-buffer", "Limits.ConnRatePerIP": "--conn-rate",
	"Limits.ConnBurstPerIP": "--conn-burst", "Limits.ConnectTimeout": "--connect-timeout",
	"Limits.MaxConnectSize": "--max-connect-size", "Limits.MaxPending": "--max-pending-connects",
	"Limits.MaxPendingPerIP": "--max-pending-connects-per-ip", "Limits.AuthConcurrency": "--auth-concurrency",
	"Limits.AuthWait": "--auth-wait", "Limits.AuthFailuresPerIP": "--auth-failures-per-ip", "Limits.PerIPExempt": "--per-ip-exempt", "MaxWait": "--max-wait",
	"RouteSyncTimeout": "--route-sync-timeout", "AuditInterval": "--presence-audit",
	"Quarantine.Grace": "--quarantine-grace", "Quarantine.MoveRate": "--move-rate", "MailboxLimit": "--mailbox-limit",
	"Window": "--window", "Lease": "--lease and --lease-interval",
}

// nodeFlagError says which flags a node error is about: the node names its config fields,
// the user knows the flags.
func nodeFlagError(err error) error { return nodeFlags.rename(err) }
