//go:build failpoints

package node

import (
	"fmt"
	"net/http"
	"time"
)

// registerFailpoints adds PUT /debug/failpoints/{name} with the value in the body:
//
//	mqtt-accept  "stop"       the MQTT listener stops accepting (its socket is closed)
//	mqtt-latency "200ms"      every inbound MQTT packet is delayed (0 to clear)
func (n *Node) registerFailpoints(mux *http.ServeMux) {
	mux.HandleFunc("PUT /debug/failpoints/{name}", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		k, _ := r.Body.Read(buf)
		val := string(buf[:k])
		switch r.PathValue("name") {
		case "mqtt-accept":
			if val != "stop" {
				http.Error(w, "mqtt-accept takes \"stop\"", http.StatusBadRequest)
				return
			}
			n.log.Warn("failpoint: MQTT listener stops accepting")
			n.mqttLis.l.Close()
		case "mqtt-latency":
			d, err := time.ParseDuration(val)
			if err != nil {
				http.Error(w, fmt.Sprintf("mqtt-latency: %v", err), http.StatusBadRequest)
				return
			}
			n.log.Warn("failpoint: MQTT packet latency", "delay", d)
			n.fp.packetDelay.Store(int64(d))
		default:
			http.Error(w, "unknown failpoint", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
