package etcdcoord

import (
	"encoding/json"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/switchboard-mqtt/switchboard/coord"
)

// childName is the last element of key under pfx, or "" when key lies deeper (not ours).
func childName(pfx string, key []byte) string {
	name := strings.TrimPrefix(string(key), pfx)
	if name == "" || strings.Contains(name, "/") {
		return ""
	}
	return name
}

// decodeMember reads a member entry; the epoch is the key's create revision.
func decodeMember(name string, kv *mvccpb.KeyValue) coord.Member {
	var m coord.Member
	if err := json.Unmarshal(kv.Value, &m); err != nil || m.ID == "" {
		m = coord.Member{} // foreign or damaged data: still a live entry
	}
	m.ID = name
	m.Epoch = kv.CreateRevision
	return m
}

func decodeMarkKV(name string, kv *mvccpb.KeyValue) coord.Quarantine {
	return coord.ParseQuarantine(name, kv.Value)
}
