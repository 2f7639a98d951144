// Command example-go is a device that receives directed messages, and a backend that sends
// them.
//
// The device connects to a Switchboard node over MQTT 5 (paho.golang) and subscribes to its
// inbox, inbox/<client id>. The backend sends it a message through the router's HTTP API
// while it is online, then another while it is offline: that one waits in the device's
// mailbox and arrives when the device connects again, on any node.
//
//	go run ./examples/go [client-id]
//
// Environment: SWITCHBOARD_MQTT (host:port of a node, default 127.0.0.1:1883),
// SWITCHBOARD_API (the router, default http://127.0.0.1:8080), SWITCHBOARD_TOKEN (the API's
// bearer token, if it has tokens on). `switchboard up` needs none of them.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

const wait = 10 * time.Second // for each step

var (
	mqttAddr = env("SWITCHBOARD_MQTT", "127.0.0.1:1883")
	api      = env("SWITCHBOARD_API", "http://127.0.0.1:8080")
	token    = os.Getenv("SWITCHBOARD_TOKEN")
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// answer is the router's answer to POST /v1/messages.
type answer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Depth  int    `json:"mailbox_depth"`
	Error  string `json:"error"`
}

// send is the backend's side: POST /v1/messages, answered once the message is delivered or
// queued.
func send(ctx context.Context, to, payload string) (answer, error) {
	body, _ := json.Marshal(map[string]string{"to": to, "payload": payload})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/v1/messages", bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return a, err
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("send: %d %s", resp.StatusCode, a.Error)
	}
	fmt.Printf("sent %q: %s\n", payload, a.Status)
	return a, nil
}

// waitOffline polls GET /v1/clients/<id> until the router sees the device gone: a
// DISCONNECT takes a moment to reach the node.
func waitOffline(ctx context.Context, id string) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v1/clients/"+url.PathEscape(id), nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var c struct {
			Online bool `json:"online"`
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if !c.Online {
			fmt.Printf("the router sees %s offline\n", id)
			return nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%s still online: %w", id, ctx.Err())
		}
	}
}

// message is one directed message the device received.
type message struct{ topic, payload, id string }

// connect is the device's side: connect, subscribe to the inbox, and hand over what
// arrives on the returned channel.
func connect(ctx context.Context, id string) (*paho.Client, <-chan message, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", mqttAddr)
	if err != nil {
		return nil, nil, err
	}
	received := make(chan message, 16)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			// Each directed message carries its id in the user property sb-id: a duplicate
			// after a failure has the same one. paho acknowledges it (PUBACK) after this.
			m := message{topic: pr.Packet.Topic, payload: string(pr.Packet.Payload)}
			if pr.Packet.Properties != nil {
				m.id = pr.Packet.Properties.User.Get("sb-id")
			}
			received <- m
			return true, nil
		}},
	})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	inbox := "inbox/" + id
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: inbox, QoS: 1}}}); err != nil {
		c.Disconnect(&paho.Disconnect{})
		return nil, nil, fmt.Errorf("subscribe: %w", err)
	}
	fmt.Printf("connected to %s as %s; subscribed to %s\n", mqttAddr, id, inbox)
	return c, received, nil
}

func receive(ctx context.Context, received <-chan message) (string, error) {
	select {
	case m := <-received:
		fmt.Printf("received on %s: %s (sb-id %s)\n", m.topic, m.payload, m.id)
		return m.payload, nil
	case <-ctx.Done():
		return "", fmt.Errorf("no message: %w", ctx.Err())
	}
}

func run(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 6*wait)
	defer cancel()
	c, received, err := connect(ctx, id)
	if err != nil {
		return err
	}
	if _, err := send(ctx, id, "hello while online"); err != nil {
		return err
	}
	if _, err := receive(ctx, received); err != nil {
		return err
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		return err
	}
	fmt.Println("disconnected")
	if err := waitOffline(ctx, id); err != nil {
		return err
	}

	a, err := send(ctx, id, "hello while offline") // queued in the mailbox
	if err != nil {
		return err
	}
	fmt.Printf("mailbox depth %d\n", a.Depth)

	c, received, err = connect(ctx, id) // the mailbox is delivered first, in order
	if err != nil {
		return err
	}
	defer c.Disconnect(&paho.Disconnect{})
	got, err := receive(ctx, received)
	if err != nil {
		return err
	}
	if got != "hello while offline" {
		return fmt.Errorf("expected the queued message, got %q", got)
	}
	fmt.Println("done")
	return nil
}

func main() {
	id := "example-go"
	if len(os.Args) > 1 {
		id = os.Args[1]
	}
	if err := run(id); err != nil {
		log.Fatal(err)
	}
}
