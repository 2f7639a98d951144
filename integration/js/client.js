// An MQTT.js (MQTT 5) client for the integration tests' edge cases: WebSocket transports,
// authentication and PUBACKs. It prints one JSON object per line on stdout:
//   {"event":"connected"}                            CONNACK 0 (and subscribed, in inbox mode)
//   {"event":"message","id":"...","payload":"..."}   every message received (sb-id user property)
//   {"event":"published","reasonCode":N}             publish mode: the PUBACK came
//   {"event":"error","error":"...","code":N}         a refusal or a failure (code: a reason code)
// Usage: node client.js <url> <client id> <username or ""> <password or ""> <mode> [topic]
//   mode inbox:   subscribe to inbox/<client id> at QoS 1 and print what arrives
//   mode publish: publish one QoS 1 message to topic with a user property, print the PUBACK
//   mode subscribe: subscribe to topic at QoS 1, print {"event":"subscribed","code":N}
//                   (N is the SUBACK's reason code: the granted QoS, or 0x80 and up for a refusal)
// SB_CA, if set, is a CA file the server's certificate must be signed by (wss://).
// It exits when stdin closes (the test ends it).
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const [url, clientId, username, password, mode, topic] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const opts = {
  clientId,
  protocolVersion: 5,
  clean: true,
  reconnectPeriod: 0,
  keepalive: 30,
  connectTimeout: 10000,
};
if (username) opts.username = username;
if (password) opts.password = password;
if (process.env.SB_CA) opts.ca = fs.readFileSync(process.env.SB_CA);

const client = mqtt.connect(url, opts);

client.on('error', (err) => out({ event: 'error', error: String((err && err.message) || err), code: err && err.code }));
client.on('message', (t, payload, packet) => {
  const user = (packet.properties && packet.properties.userProperties) || {};
  out({ event: 'message', id: String(user['sb-id'] || ''), topic: t, payload: payload.toString() });
});
client.on('connect', () => {
  if (mode === 'inbox') {
    client.subscribe('inbox/' + clientId, { qos: 1 }, (err) => {
      if (err) {
        out({ event: 'error', error: 'subscribe: ' + err.message });
        return;
      }
      out({ event: 'connected' });
    });
    return;
  }
  out({ event: 'connected' });
  if (mode === 'subscribe') {
    // On a refusal MQTT.js calls back with an error and the SUBACK packet, whose granted
    // list holds the reason codes (the second argument still holds the requested QoS).
    client.subscribe(topic, { qos: 1 }, (err, granted, suback) => {
      if (suback && suback.granted) {
        out({ event: 'subscribed', code: suback.granted[0] });
        return;
      }
      if (err) {
        out({ event: 'error', error: 'subscribe: ' + err.message, code: err.code });
        return;
      }
      out({ event: 'subscribed', code: granted[0].qos });
    });
    return;
  }
  client.publish(topic, 'with a user property', { qos: 1, properties: { userProperties: { a: '1' } } }, (err, packet) => {
    if (err) {
      out({ event: 'error', error: 'publish: ' + err.message, code: err.code });
      return;
    }
    out({ event: 'published', reasonCode: (packet && packet.reasonCode) || 0 });
  });
});

process.stdin.resume();
process.stdin.on('end', () => client.end(true, () => process.exit(0)));
