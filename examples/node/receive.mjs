// A device that receives directed messages, and a backend that sends them.
//
// The device connects to a Switchboard node over MQTT 5 (MQTT.js) and subscribes to its
// inbox, inbox/<client id>. The backend sends it a message through the router's HTTP API
// while it is online, then another while it is offline: that one waits in the device's
// mailbox and arrives when the device connects again, on any node.
//
//     npm ci && node receive.mjs [client-id]
//
// Environment: SWITCHBOARD_MQTT (host:port of a node, default 127.0.0.1:1883),
// SWITCHBOARD_API (the router, default http://127.0.0.1:8080), SWITCHBOARD_TOKEN (the API's
// bearer token, if it has tokens on). `switchboard up` needs none of them.
import mqtt from "mqtt";

const MQTT = process.env.SWITCHBOARD_MQTT || "127.0.0.1:1883";
const API = process.env.SWITCHBOARD_API || "http://127.0.0.1:8080";
const TOKEN = process.env.SWITCHBOARD_TOKEN || "";
const clientId = process.argv[2] || "example-node";
const inbox = `inbox/${clientId}`;
const WAIT = 10_000; // ms for each step

// The backend's side: POST /v1/messages, answered once the message is delivered or queued.
async function send(payload) {
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const resp = await fetch(`${API}/v1/messages`, {
    method: "POST", headers, body: JSON.stringify({ to: clientId, payload }),
    signal: AbortSignal.timeout(WAIT),
  });
  const answer = await resp.json();
  if (!resp.ok) throw new Error(`send: ${resp.status} ${answer.error}`);
  console.log(`sent ${JSON.stringify(payload)}: ${answer.status}`);
  return answer;
}

// GET /v1/clients/<id> until the router sees the device gone: a DISCONNECT takes a moment.
async function waitOffline() {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  for (const deadline = Date.now() + WAIT; Date.now() < deadline;) {
    const resp = await fetch(`${API}/v1/clients/${encodeURIComponent(clientId)}`, { headers });
    if (!(await resp.json()).online) {
      console.log(`the router sees ${clientId} offline`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${clientId} still online after ${WAIT}ms`);
}

// The device's side: connect, subscribe to the inbox; next() waits for a message.
async function connect() {
  const client = await mqtt.connectAsync(`mqtt://${MQTT}`, {
    clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: WAIT,
  });
  const waiting = [];
  const arrived = [];
  client.on("message", (topic, payload, packet) => {
    // Each directed message carries its id in the user property sb-id: a duplicate after
    // a failure has the same one. MQTT.js acknowledges it (PUBACK) after this handler.
    const msg = { topic, payload: payload.toString(), id: packet.properties?.userProperties?.["sb-id"] };
    const w = waiting.shift();
    if (w) w(msg); else arrived.push(msg);
  });
  await client.subscribeAsync(inbox, { qos: 1 });
  console.log(`connected to ${MQTT} as ${clientId}; subscribed to ${inbox}`);
  const next = () => new Promise((resolve, reject) => {
    if (arrived.length) return resolve(arrived.shift());
    const timer = setTimeout(() => reject(new Error(`no message within ${WAIT}ms`)), WAIT);
    waiting.push((m) => { clearTimeout(timer); resolve(m); });
  });
  return { client, next };
}

function print(m) {
  console.log(`received on ${m.topic}: ${m.payload} (sb-id ${m.id})`);
  return m.payload;
}

let device = await connect();
await send("hello while online");
print(await device.next());
await device.client.endAsync();
console.log("disconnected");
await waitOffline();

const answer = await send("hello while offline"); // queued in the mailbox
console.log(`mailbox depth ${answer.mailbox_depth}`);

device = await connect(); // the mailbox is delivered first, in order
const got = print(await device.next());
await device.client.endAsync();
if (got !== "hello while offline") {
  console.error(`expected the queued message, got ${JSON.stringify(got)}`);
  process.exit(1);
}
console.log("done");
