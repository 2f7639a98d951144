package node

import "github.com/mochi-mqtt/server/v2/packets"

// DropForTest calls the node's OnPublishDropped hook as mochi does when a subscriber's
// outbound queue is full, for the client connected with id.
func (n *Node) DropForTest(id string, pk packets.Packet) bool {
	st := n.clients.get(id)
	if st == nil {
		return false
	}
	(&hook{n: n}).OnPublishDropped(st.cl, pk)
	return true
}
