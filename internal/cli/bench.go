package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/switchboard-mqtt/switchboard/bench"
	"github.com/switchboard-mqtt/switchboard/internal/progress"
)

func runBench(ctx context.Context, e env, args []string) error {
	subs := []struct {
		name, summary string
		run           func(context.Context, env, []string) error
	}{
		{"direct", "directed messages through a router to clients on the nodes: throughput, latency, completeness", benchDirect},
		{"pubsub", "publisher→subscriber pairs against any MQTT broker", benchPubSub},
		{"fanout", "one message to a group (a background job) or lists of offline clients: messages queued/s", benchFanout},
		{"connect", "a connection storm: connections/s and the broker's idle memory per connection", benchConnect},
		{"report", "turn --json results into a side-by-side markdown table of medians (--median: one figure)", benchReport},
	}
	if len(args) > 0 {
		for _, s := range subs {
			if s.name == args[0] {
				return s.run(ctx, e, args[1:])
			}
		}
		// Not listed: a tool of the benchmark scripts, not a benchmark.
		if args[0] == "delay-proxy" {
			return benchDelayProxy(ctx, e, args[1:])
		}
	}
	w := e.stderr
	fmt.Fprintln(w, "usage: switchboard bench <direct|pubsub|fanout|connect|report> [flags]")
	for _, s := range subs {
		fmt.Fprintf(w, "  %-8s %s\n", s.name, s.summary)
	}
	fmt.Fprintln(w, "\nRun `switchboard bench <kind> -h` for its flags. --json prints a machine-readable result;")
	fmt.Fprintln(w, "a run that loses an accepted message or breaks order exits 1.")
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			return usagef("want a benchmark kind")
		}
		return flag.ErrHelp
	}
	return usagef("unknown benchmark %q", args[0])
}

// benchOutput are the flags every benchmark takes for its output.
type benchOutput struct {
	asJSON        bool
	label, system string
	progress      string
	cpuProfile    string
}

func (o *benchOutput) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&o.label, "label", "", "label recorded in the JSON result (for bench report)")
	fs.StringVar(&o.system, "system", "", "system name recorded in the JSON result (for bench report)")
	fs.StringVar(&o.progress, "progress", "auto", "progress line on stderr: auto (when it is a terminal and not --json), always, never")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to this file (to check it is not the bottleneck)")
}

// profile starts the generator's CPU profile if asked; stop ends it.
func (o *benchOutput) profile() (stop func(), err error) {
	if o.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(o.cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// progressWriter is stderr when a progress line is wanted.
func (o *benchOutput) progressWriter(e env) (io.Writer, error) {
	switch o.progress {
	case "always":
		return e.stderr, nil
	case "never":
		return nil, nil
	case "auto": // a terminal, and not --json: the shared rule of every long-running command
		if !o.asJSON && progress.IsTerminal(e.stderr) {
			return e.stderr, nil
		}
		return nil, nil
	}
	return nil, usagef("--progress %q: want auto, always or never", o.progress)
}

// run sets the progress line, profiles the run when asked, and prints its result.
func (o *benchOutput) run(e env, progress *io.Writer, run func() (*bench.Result, error)) error {
	var err error
	if *progress, err = o.progressWriter(e); err != nil {
		return err
	}
	stopProfile, err := o.profile()
	if err != nil {
		return err
	}
	res, err := run()
	stopProfile()
	if err != nil {
		return err
	}
	return o.finish(e, res)
}

// finish prints the result and turns a failed run into exit status 1.
func (o *benchOutput) finish(e env, res *bench.Result) error {
	res.Label, res.System = o.label, o.system
	if o.asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		res.WriteText(e.stdout)
	}
	if !res.OK {
		return exitCodeError{code: exitError, err: fmt.Errorf("benchmark failed: %s", strings.Join(res.Failures, "; "))}
	}
	return nil
}

func parseQoS(q int) (byte, error) {
	if q != 0 && q != 1 {
		return 0, usagef("--qos %d: want 0 or 1", q)
	}
	return byte(q), nil
}

func benchDirect(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("bench direct", e)
	cfg := bench.DefaultDirectConfig()
	var (
		out            benchOutput
		mqttAddrs      string
		admins         string
		qos, version   int
		senders, batch int
	)
	out.register(fs)
	fs.StringVar(&cfg.API, "api", cfg.API, "router API base URL")
	fs.StringVar(&mqttAddrs, "mqtt", strings.Join(cfg.MQTT, ","), "nodes' MQTT addresses, comma-separated; clients connect round-robin")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "MQTT clients receiving (each subscribed to inbox/<id>)")
	fs.IntVar(&senders, "senders", cfg.Senders, "concurrent senders posting to the API (one request in flight each)")
	fs.IntVar(&cfg.Count, "count", 0, "messages to send in all (instead of --duration)")
	fs.IntVar(&cfg.Burst, "burst", 0, "send each client a burst of this many messages as fast as the API takes them "+
		"(instead of --count or --duration; --batch defaults to 100); reports each client's msg/s, first send to last receipt")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send, when neither --count nor --burst is given")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered rate, messages a second over all senders (0: saturation)")
	fs.IntVar(&batch, "batch", cfg.Batch, "messages per request (more than 1 posts /v1/messages/batch)")
	fs.DurationVar(&cfg.MaxWait, "max-wait", 0, "max_wait of every request: how long the router waits for the client's PUBACK before answering queued (0: the router's default)")
	fs.DurationVar(&cfg.DeliverIn, "deliver-in", 0, "schedule every message this long after its request (deliver_at); latency counts from the request")
	fs.StringVar(&cfg.Priority, "priority", "", "every message's priority: high (through the mailbox's high lane) or normal")
	receipts := true
	fs.BoolVar(&receipts, "receipts", true, "ask for a delivery receipt with every message (the API's default); --receipts=false sends receipt:false")
	fs.IntVar(&cfg.DelayClients, "delay-clients", 0, "connect this many clients (the first ones) through a proxy that delays each direction by --delay")
	fs.DurationVar(&cfg.Delay, "delay", cfg.Delay, "the delay each way for --delay-clients (a round trip takes twice it more)")
	fs.IntVar(&qos, "qos", int(cfg.QoS), "QoS of the messages and subscriptions: 0 or 1")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes (at least 32)")
	fs.IntVar(&version, "mqtt-version", int(cfg.MQTTVersion), "MQTT protocol version of the clients: 4 (3.1.1) or 5")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "client id prefix (a random run id follows)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "wait this long at most for accepted messages after the last send")
	fs.BoolVar(&cfg.Reconnect, "reconnect", false, "clients whose connection ends reconnect as devices do: a random wait below --reconnect-jitter, "+
		"another node, exponential back-off while dials fail; reports how long until all are back and their backlog drained")
	reconnectMQTT := fs.String("reconnect-mqtt", "", "with --reconnect: the addresses reconnecting clients dial, comma-separated (default: --mqtt)")
	fs.DurationVar(&cfg.ReconnectJitter, "reconnect-jitter", cfg.ReconnectJitter, "with --reconnect: a client's first wait is random below this; its back-off starts here")
	fs.IntVar(&cfg.KillPID, "kill-pid", 0, "SIGKILL this process (a node) --kill-after into the sending; implies --reconnect")
	fs.DurationVar(&cfg.KillAfter, "kill-after", cfg.KillAfter, "with --kill-pid: when to kill, from the start of the sending")
	fs.StringVar(&cfg.RouterMetrics, "router-metrics", "", "router /metrics URL for its CPU per message (default: API/metrics; - for none)")
	fs.StringVar(&admins, "node-admin", "", "nodes' admin addresses, comma-separated, for their CPU per message")
	secretVar(fs, &cfg.Token, "token", "the API's bearer token, if it wants one")
	creds := registerCreds(fs)
	sources := fs.String("source-ips", "", "spread the clients over these source addresses: IPs or ranges like 127.0.0.2-127.0.0.33")
	if err := parse(fs, args); err != nil {
		return err
	}
	warnSecrets(fs, stderrLogger(e))
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if (cfg.Count > 0 || cfg.Burst > 0) && !flagGiven(fs, "duration") {
		cfg.Duration = 0
	}
	if cfg.Burst > 0 && !flagGiven(fs, "batch") {
		batch = 100
	}
	var err error
	if cfg.QoS, err = parseQoS(qos); err != nil {
		return err
	}
	cfg.MQTT, cfg.NodeAdmin = splitList(mqttAddrs), splitList(admins)
	cfg.ReconnectMQTT = splitList(*reconnectMQTT)
	cfg.MQTTVersion, cfg.Senders, cfg.Batch = byte(version), senders, batch
	cfg.NoReceipts = !receipts
	cfg.Username, cfg.Password = creds.user, creds.pass
	if cfg.SourceIPs, err = bench.ParseSourceIPs(*sources); err != nil {
		return usageError{err}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{benchFlags.rename(err)}
	}
	return out.run(e, &cfg.Progress, func() (*bench.Result, error) { return bench.RunDirect(ctx, cfg) })
}

// benchFlags names the flag behind each field of the bench configs their errors name (the
// bench commands give each field the same flag).
var benchFlags = fieldFlags{
	"API": "--api", "MQTT": "--mqtt", "Clients": "--clients", "Senders": "--senders", "Count": "--count",
	"Burst": "--burst", "Duration": "--duration", "Rate": "--rate", "MaxWait": "--max-wait",
	"DelayClients": "--delay-clients", "Delay": "--delay", "Batch": "--batch", "QoS": "--qos", "Size": "--size",
	"MQTTVersion": "--mqtt-version", "DrainTimeout": "--drain-timeout", "Connections": "--connections",
	"Concurrency": "--concurrency", "Settle": "--settle", "Pairs": "--pairs", "Window": "--window",
	"Inflight": "--inflight", "Listen": "--listen", "Target": "--to",
	"SubMQTT": "--sub-mqtt", "PubMQTT": "--pub-mqtt", "CrossNode": "--cross-node",
	"Hold": "--hold", "PingInterval": "--ping", "KeepAlive": "--keepalive", "Priority": "--priority", "DeliverIn": "--deliver-in",
	"Reconnect": "--reconnect", "ReconnectJitter": "--reconnect-jitter", "KillPID": "--kill-pid", "KillAfter": "--kill-after",
}

func benchPubSub(ctx context.Context, e env, args []string) error {
	cfg, out, err := pubSubConfig(e, args)
	if err != nil {
		return err
	}
	return out.run(e, &cfg.Progress, func() (*bench.Result, error) { return bench.RunPubSub(ctx, cfg) })
}

// pubSubConfig parses `bench pubsub`'s flags into a validated configuration.
func pubSubConfig(e env, args []string) (bench.PubSubConfig, *benchOutput, error) {
	fs := newFlagSet("bench pubsub", e)
	cfg := bench.DefaultPubSubConfig()
	var (
		out                           benchOutput
		mqttAddrs, subAddrs, pubAddrs string
		qos, version                  int
	)
	out.register(fs)
	fs.StringVar(&mqttAddrs, "mqtt", strings.Join(cfg.MQTT, ","), "brokers' addresses host:port, comma-separated: "+
		"pair i's subscriber and publisher connect to address i % N (a cluster's nodes: the pairs spread over them, each on one node)")
	fs.StringVar(&subAddrs, "sub-mqtt", "", "subscribers' brokers, comma-separated, instead of --mqtt")
	fs.StringVar(&pubAddrs, "pub-mqtt", "", "publishers' brokers, comma-separated, instead of --mqtt")
	fs.BoolVar(&cfg.CrossNode, "cross-node", false, "connect pair i's publisher to address (i+1) % N of its list: "+
		"with a cluster's N ≥ 2 nodes in --mqtt, every publisher is on another node than its subscriber (refused if one would not be)")
	fs.IntVar(&cfg.Pairs, "pairs", cfg.Pairs, "publisher/subscriber pairs, each on its own topic")
	fs.IntVar(&cfg.Count, "count", 0, "messages to publish in all (instead of --duration)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to publish, when --count is not given")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered rate, messages a second over all pairs (0: as fast as flow control allows)")
	fs.IntVar(&qos, "qos", int(cfg.QoS), "QoS: 0 or 1")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes (at least 32)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "most messages of a pair published but not yet received")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "most QoS 1 publishes of one publisher awaiting PUBACK")
	fs.IntVar(&version, "mqtt-version", int(cfg.MQTTVersion), "MQTT protocol version: 4 (3.1.1) or 5")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "client id and topic prefix")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "wait this long at most for messages after the last publish")
	creds := registerCreds(fs)
	if err := parse(fs, args); err != nil {
		return cfg, nil, err
	}
	warnSecrets(fs, stderrLogger(e))
	if fs.NArg() > 0 {
		return cfg, nil, usagef("unexpected arguments %q", fs.Args())
	}
	if cfg.Count > 0 && !flagGiven(fs, "duration") {
		cfg.Duration = 0
	}
	var err error
	if cfg.QoS, err = parseQoS(qos); err != nil {
		return cfg, nil, err
	}
	cfg.MQTT, cfg.SubMQTT, cfg.PubMQTT = splitList(mqttAddrs), splitList(subAddrs), splitList(pubAddrs)
	if len(cfg.SubMQTT) > 0 && len(cfg.PubMQTT) > 0 && !flagGiven(fs, "mqtt") {
		cfg.MQTT = nil // unused: the result should not name the default as if it were
	}
	cfg.MQTTVersion = byte(version)
	cfg.Username, cfg.Password = creds.user, creds.pass
	if err := cfg.Validate(); err != nil {
		return cfg, nil, usageError{benchFlags.rename(err)}
	}
	return cfg, &out, nil
}

func benchConnect(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("bench connect", e)
	cfg := bench.DefaultConnectConfig()
	var (
		out                     benchOutput
		mqttAddrs, admins, pids string
		version                 int
		keepalive               uint
	)
	out.register(fs)
	fs.StringVar(&mqttAddrs, "mqtt", strings.Join(cfg.MQTT, ","), "brokers' MQTT addresses, comma-separated; connections go round-robin")
	fs.IntVar(&cfg.Connections, "connections", cfg.Connections, "connections to open")
	fs.Float64Var(&cfg.Rate, "rate", 0, "offered connections a second (0: as fast as --concurrency allows)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "most handshakes in flight")
	fs.BoolVar(&cfg.Subscribe, "subscribe", cfg.Subscribe, "subscribe each client to inbox/<id> at QoS 1, as a Switchboard client does")
	fs.IntVar(&version, "mqtt-version", int(cfg.MQTTVersion), "MQTT protocol version: 4 (3.1.1) or 5")
	fs.UintVar(&keepalive, "keepalive", uint(cfg.KeepAlive), "clients' keep-alive in seconds (idle clients do not ping: keep it longer than the run)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "idle time after the storm before memory is read")
	fs.StringVar(&admins, "admin", "", "Go brokers' admin addresses (node --admin, mochi-bare --admin), comma-separated: memory from their /metrics")
	fs.StringVar(&pids, "pid", "", "broker process ids, comma-separated: memory from /proc/<pid>/status VmRSS (e.g. mosquitto)")
	fs.BoolVar(&cfg.GC, "gc", cfg.GC, "collect garbage on --admin servers (via /debug/pprof) before reading memory")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "client id prefix")
	creds := registerCreds(fs)
	sources := fs.String("source-ips", "", "spread the connections over these source addresses: IPs or ranges like 127.0.0.2-127.0.0.33")
	useTLS := fs.Bool("tls", false, "connect over TLS (a full handshake for every connection)")
	fs.DurationVar(&cfg.Hold, "hold", 0, "after memory is read, keep the clients this long while the brokers' CPU is measured")
	fs.DurationVar(&cfg.PingInterval, "ping", 0, "while held, ping every client this often (within the keep-alive) and count the answers")
	tlsCA := fs.String("tls-ca", "", "CA file the brokers' certificates must be signed by (implies --tls; default: the system's roots)")
	if err := parse(fs, args); err != nil {
		return err
	}
	warnSecrets(fs, stderrLogger(e))
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *useTLS || *tlsCA != "" {
		tc, err := benchTLS(*tlsCA, mqttAddrs)
		if err != nil {
			return err
		}
		cfg.TLS, cfg.UseTLS = tc, true
	}
	if keepalive > 65535 {
		return usagef("--keepalive %d: at most 65535", keepalive)
	}
	cfg.MQTT, cfg.Admin = splitList(mqttAddrs), splitList(admins)
	cfg.MQTTVersion, cfg.KeepAlive = byte(version), uint16(keepalive)
	cfg.Username, cfg.Password = creds.user, creds.pass
	var err error
	if cfg.SourceIPs, err = bench.ParseSourceIPs(*sources); err != nil {
		return usageError{err}
	}
	for _, p := range splitList(pids) {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return usagef("--pid %q: want process ids", pids)
		}
		cfg.PIDs = append(cfg.PIDs, n)
	}
	if err := cfg.Validate(); err != nil {
		return usageError{benchFlags.rename(err)}
	}
	return out.run(e, &cfg.Progress, func() (*bench.Result, error) { return bench.RunConnect(ctx, cfg) })
}

// mqttCreds are the MQTT credentials flags.
type mqttCreds struct{ user, pass string }

func registerCreds(fs *flag.FlagSet) *mqttCreds {
	c := &mqttCreds{}
	fs.StringVar(&c.user, "username", "", "MQTT username, if the broker wants one")
	secretVar(fs, &c.pass, "password", "MQTT password")
	return c
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func benchReport(_ context.Context, e env, args []string) error {
	fs := newFlagSet("bench report", e)
	var (
		systems, refs string
		rows, targets listFlag
		runs          bool
		median        string
	)
	fs.StringVar(&systems, "systems", "mosquitto=mosquitto,mochi-bare=bare mochi,node=Switchboard node,cluster=Switchboard cluster",
		"columns: key=heading, comma-separated (key is a result's --system)")
	fs.StringVar(&refs, "ratio-to", "mosquitto,mochi-bare", "systems to give ratios to, comma-separated keys")
	fs.Var(&rows, "row", "a row: TITLE|LABEL|METRIC|UNIT[|REF[|GEN]] (repeat); METRIC is a dotted path into the result, e.g. latency_ms.p99; "+
		"REF is the label (or LABEL:METRIC) whose reference values the ratios use, with @SYSTEM for one more ratio, to that system, in the row's other cells; "+
		"GEN a metric shown in a last column, e.g. generator_cpu_us_per_msg")
	fs.Var(&targets, "target", "a target: TEXT|LABEL|SYSTEM|METRIC|UNIT|OP|VALUE[|REFLABEL|REFSYSTEM] (repeat)")
	fs.BoolVar(&runs, "runs", false, "also list every run's value")
	fs.StringVar(&median, "median", "", "print only the median of LABEL|SYSTEM|METRIC, a plain number (exit 1 if no result has it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want result files (the output of --json runs; - for standard input)")
	}
	var medianOf []string
	if median != "" {
		if medianOf = strings.Split(median, "|"); len(medianOf) != 3 {
			return usagef("--median %q: want LABEL|SYSTEM|METRIC", median)
		}
	}
	var cols []bench.ReportSystem
	for _, s := range splitList(systems) {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			v = k
		}
		cols = append(cols, bench.ReportSystem{Key: k, Name: v})
	}
	var rs []bench.ReportRow
	for _, s := range rows {
		r, err := bench.ParseReportRow(s)
		if err != nil {
			return usageError{err}
		}
		rs = append(rs, r)
	}
	var ts []bench.ReportTarget
	for _, s := range targets {
		t, err := bench.ParseReportTarget(s)
		if err != nil {
			return usageError{err}
		}
		ts = append(ts, t)
	}
	var all []map[string]any
	for _, name := range fs.Args() {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		res, err := bench.ReadResults(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		all = append(all, res...)
	}
	rep := bench.NewReport(all)
	if medianOf != nil {
		v, ok := rep.Median(medianOf[0], medianOf[1], medianOf[2])
		if !ok {
			return fmt.Errorf("--median %q: no result has it", median)
		}
		fmt.Fprintln(e.stdout, strconv.FormatFloat(v, 'f', -1, 64))
		return nil
	}
	rep.WriteTable(e.stdout, cols, splitList(refs), rs)
	if runs {
		fmt.Fprintln(e.stdout)
		rep.WriteRuns(e.stdout, cols, rs)
	}
	if len(ts) > 0 {
		fmt.Fprintln(e.stdout)
		verdicts := rep.CheckTargets(ts)
		bench.WriteTargets(e.stdout, verdicts)
	}
	var failed strings.Builder
	if rep.WriteFailures(&failed) {
		fmt.Fprintf(e.stdout, "\nRuns that failed their checks:\n\n%s", failed.String())
	}
	return nil
}

// flagGiven reports whether the flag was set on the command line or in the environment.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// benchDelayProxy runs a DelayProxy until interrupted: a client behind a slow link, for
// trying by hand what `bench direct --delay-clients` does in process.
func benchDelayProxy(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("bench delay-proxy", e)
	cfg := bench.DefaultDelayProxyConfig()
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to listen on (loopback only; port 0 picks one)")
	fs.StringVar(&cfg.Target, "to", "", "address to forward every connection to (loopback only), e.g. a node's MQTT address")
	fs.DurationVar(&cfg.Delay, "delay", cfg.Delay, "delay added to each direction (a round trip takes twice it more)")
	fs.IntVar(&cfg.Buffer, "buffer", cfg.Buffer, "bytes held at most per direction and connection")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "connections forwarded at once at most")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return usageError{benchFlags.rename(err)}
	}
	p, err := bench.StartDelayProxy(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(e.stdout, "delay proxy on %s to %s, %v each way\n", p.Addr(), cfg.Target, cfg.Delay)
	<-ctx.Done()
	return nil
}

// benchTLS is the generator's TLS client configuration: the brokers verified against the
// CA file (the system's roots without one) under the host of the first address, set once
// rather than per connection.
func benchTLS(caFile, addrs string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usagef("--tls-ca: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-ca %s: no PEM certificate in it", caFile)
		}
	}
	if l := splitList(addrs); len(l) > 0 {
		tc.ServerName, _, _ = net.SplitHostPort(l[0])
	}
	return tc, nil
}
