// Package bench is Switchboard's load generator, behind `switchboard bench`:
//
//   - RunDirect: MQTT clients subscribed to their inboxes on the nodes, senders posting
//     messages for them to a router's HTTP API; throughput, end-to-end latency, answer
//     times and a completeness check (every accepted message arrives, in order per client
//     and sender). Either many clients with few messages each in flight, or a burst to
//     each of few clients (DirectConfig.Burst) with that client's own throughput; some
//     clients may sit behind a DelayProxy, a slow link.
//   - RunPubSub: publisher→subscriber pairs against any MQTT broker (mosquitto, a bare
//     mochi broker, a Switchboard node), for comparison, or across a cluster's nodes with
//     each publisher on another node than its subscriber (PubSubConfig.CrossNode).
//   - RunConnect: a connection storm and the broker's idle memory per connection.
//   - DelayProxy: a TCP proxy on loopback that delays each direction by a fixed time.
//
// The generator must not be what it measures, so it speaks MQTT through its own small
// client (internal/mqttclient) on raw TCP with mochi's packet codec: one reader and one writer
// goroutine per connection, buffers reused, writes coalesced. Every run reports the
// generator's own CPU time per message.
//
// Report turns many runs' JSON results into a side-by-side table of medians
// (scripts/bench.sh writes docs/BENCHMARKS.md with it).
package bench
