#!/usr/bin/env python3
"""A device that receives directed messages, and a backend that sends them.

The device connects to a Switchboard node over MQTT 5 (paho-mqtt) and subscribes to its
inbox, inbox/<client id>. The backend sends it a message through the router's HTTP API
while it is online, then another while it is offline: that one waits in the device's
mailbox and arrives when the device connects again, on any node.

    python3 receive.py [client-id]

Environment: SWITCHBOARD_MQTT (host:port of a node, default 127.0.0.1:1883),
SWITCHBOARD_API (the router, default http://127.0.0.1:8080), SWITCHBOARD_TOKEN (the API's
bearer token, if it has tokens on). `switchboard up` needs none of them.
"""
import json
import os
import queue
import sys
import time
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt

MQTT = os.environ.get("SWITCHBOARD_MQTT", "127.0.0.1:1883")
API = os.environ.get("SWITCHBOARD_API", "http://127.0.0.1:8080")
TOKEN = os.environ.get("SWITCHBOARD_TOKEN", "")
CLIENT_ID = sys.argv[1] if len(sys.argv) > 1 else "example-python"
INBOX = "inbox/" + CLIENT_ID
WAIT = 10  # seconds for each step


def send(payload):
    """The backend's side: POST /v1/messages, answered once the message is delivered or queued."""
    req = urllib.request.Request(API + "/v1/messages", method="POST",
                                 data=json.dumps({"to": CLIENT_ID, "payload": payload}).encode(),
                                 headers={"Content-Type": "application/json"})
    if TOKEN:
        req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        answer = json.load(resp)
    print(f"sent {json.dumps(payload)}: {answer['status']}", flush=True)
    return answer


def wait_offline():
    """GET /v1/clients/<id> until the router sees the device gone: a DISCONNECT takes a moment."""
    req = urllib.request.Request(API + "/v1/clients/" + urllib.parse.quote(CLIENT_ID, safe=""))
    if TOKEN:
        req.add_header("Authorization", "Bearer " + TOKEN)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            if not json.load(resp)["online"]:
                print(f"the router sees {CLIENT_ID} offline", flush=True)
                return
        time.sleep(0.05)
    raise queue.Empty


def connect():
    """The device's side: connect, subscribe to the inbox, and hand over what arrives."""
    received = queue.Queue()
    subscribed = queue.Queue()
    try:  # paho-mqtt 2
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=CLIENT_ID, protocol=mqtt.MQTTv5)
    except AttributeError:  # paho-mqtt 1.x (Debian 12)
        client = mqtt.Client(client_id=CLIENT_ID, protocol=mqtt.MQTTv5)

    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe(INBOX, qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):
        subscribed.put(True)

    def on_message(client, userdata, msg):
        # Each directed message carries its id in the user property sb-id: a duplicate after
        # a failure has the same one. Returning acknowledges it (PUBACK).
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        received.put((msg.topic, msg.payload.decode(), props.get("sb-id")))

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    host, port = MQTT.rsplit(":", 1)
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    subscribed.get(timeout=WAIT)
    print(f"connected to {MQTT} as {CLIENT_ID}; subscribed to {INBOX}", flush=True)
    return client, received


def receive(received):
    topic, payload, sb_id = received.get(timeout=WAIT)
    print(f"received on {topic}: {payload} (sb-id {sb_id})", flush=True)
    return payload


def main():
    client, received = connect()
    send("hello while online")
    receive(received)
    client.disconnect()
    client.loop_stop()
    print("disconnected", flush=True)
    wait_offline()

    answer = send("hello while offline")  # queued in the mailbox
    print(f"mailbox depth {answer.get('mailbox_depth')}", flush=True)

    client, received = connect()  # the mailbox is delivered first, in order
    got = receive(received)
    client.disconnect()
    client.loop_stop()
    if got != "hello while offline":
        sys.exit(f"expected the queued message, got {got!r}")
    print("done", flush=True)


if __name__ == "__main__":
    try:
        main()
    except queue.Empty:
        sys.exit(f"timed out after {WAIT}s")
