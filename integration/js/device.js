// A device as the integration tests need one: an MQTT.js client that subscribes to its
// inbox and, while it receives, publishes QoS 1 messages of its own on the same
// connection. It prints one JSON object per line on stdout:
//   {"event":"connected"}            once subscribed
//   {"event":"message","id":"..."}   for every directed message (its sb-id user property)
//   {"event":"published","n":N}      every 50 acknowledged publishes
//   {"event":"error","error":"..."}
// Usage: node device.js <mqtt url> <client id> <publish topic> <publish count>
// It exits when stdin closes (the test ends it).
'use strict';
const mqtt = require('mqtt');

const [url, clientId, pubTopic, pubCount] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const client = mqtt.connect(url, {
  clientId,
  protocolVersion: 5,
  clean: true,
  reconnectPeriod: 0,
  keepalive: 30,
});

client.on('error', (err) => out({ event: 'error', error: String(err && err.message || err) }));
client.on('message', (topic, payload, packet) => {
  const user = (packet.properties && packet.properties.userProperties) || {};
  out({ event: 'message', id: String(user['sb-id'] || ''), topic, payload: payload.toString() });
});
client.on('connect', () => {
  client.subscribe('inbox/' + clientId, { qos: 1 }, (err) => {
    if (err) {
      out({ event: 'error', error: 'subscribe: ' + err.message });
      return;
    }
    out({ event: 'connected' });
    let n = 0;
    const total = Number(pubCount);
    const next = () => {
      if (n >= total) return;
      client.publish(pubTopic, 'telemetry ' + n, { qos: 1 }, (err) => {
        if (err) {
          out({ event: 'error', error: 'publish: ' + err.message });
          return;
        }
        n++;
        if (n % 50 === 0 || n === total) out({ event: 'published', n });
        setImmediate(next);
      });
    };
    next();
  });
});

process.stdin.resume();
process.stdin.on('end', () => client.end(true, () => process.exit(0)));
