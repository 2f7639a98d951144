package router

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-mqtt/switchboard/inbox"
	"github.com/switchboard-mqtt/switchboard/store"
)

// GroupChange is the JSON body of POST /v1/groups/{name}/members.
type GroupChange struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// GroupView is the answer of GET /v1/groups/{name} (and, without members, of a change).
type GroupView struct {
	Group   string   `json:"group"`
	Size    int      `json:"size"`
	Members []string `json:"members,omitempty"`
	// Next is the after of the next page; absent on the last.
	Next string `json:"next,omitempty"`
}

// maxGroupName is the longest group name.
const maxGroupName = 128

// validGroupName checks a group name: 1-128 of [A-Za-z0-9._:@-].
func validGroupName(field, name string) error {
	if name == "" || len(name) > maxGroupName || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:@-", r))
	}) >= 0 {
		return fieldError{field, fmt.Sprintf("%.140q: use 1-%d of [A-Za-z0-9._:@-]", name, maxGroupName)}
	}
	return nil
}

// groups is the store's groups, or a 501 answered.
func (r *Router) groups(w http.ResponseWriter) (store.Groups, bool) {
	g, ok := r.store.(store.Groups)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, ErrorBody{Error: "this store keeps no groups"})
	}
	return g, ok
}

func (r *Router) handleGroupChange(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if err := validGroupName("name", name); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	g, ok := r.groups(w)
	if !ok {
		return
	}
	var body GroupChange
	if err := decode(w, req, int64(store.MaxGroupChange)*maxIDBytes+64<<10, &body); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	if n := len(body.Add) + len(body.Remove); n == 0 || n > store.MaxGroupChange {
		r.badRequest(w, fieldError{"add", fmt.Sprintf("%d client ids in add and remove: give 1 to %d", n, store.MaxGroupChange)}, nil)
		return
	}
	seen := make(map[string]string, len(body.Add)+len(body.Remove))
	for _, part := range []struct {
		field string
		ids   []string
	}{{"add", body.Add}, {"remove", body.Remove}} {
		for i, id := range part.ids {
			field := fmt.Sprintf("%s[%d]", part.field, i)
			if err := inbox.ValidateClientID(id); err != nil {
				r.badRequest(w, fieldError{field, err.Error()}, nil)
				return
			}
			if other, dup := seen[id]; dup {
				r.badRequest(w, fieldError{field, fmt.Sprintf("%q is also %s: each client once", id, other)}, nil)
				return
			}
			seen[id] = field
		}
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	size, err := g.ChangeGroup(ctx, name, body.Add, body.Remove)
	if err != nil {
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "change group " + name + ": " + msg})
		return
	}
	writeJSON(w, http.StatusOK, GroupView{Group: name, Size: size})
}

func (r *Router) handleGroup(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if err := validGroupName("name", name); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	q := req.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > store.MaxGroupPage {
			r.badRequest(w, fieldError{"limit", fmt.Sprintf("%q: want 0 to %d", s, store.MaxGroupPage)}, nil)
			return
		}
		limit = n
	}
	after := q.Get("after")
	g, ok := r.groups(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	members, size, err := g.GroupMembers(ctx, name, after, limit)
	if err != nil {
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "read group " + name + ": " + msg})
		return
	}
	if size == 0 {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("group %q has no members", name), Field: "name"})
		return
	}
	v := GroupView{Group: name, Size: size, Members: members}
	if v.Members == nil {
		v.Members = []string{}
	}
	if limit > 0 && len(members) == limit {
		v.Next = members[len(members)-1]
	}
	writeJSON(w, http.StatusOK, v)
}

func (r *Router) handleGroupDelete(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if err := validGroupName("name", name); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	g, ok := r.groups(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	defer cancel()
	had, err := g.DeleteGroup(ctx, name)
	if err != nil {
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "delete group " + name + ": " + msg})
		return
	}
	if !had {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("group %q has no members", name), Field: "name"})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Group   string `json:"group"`
		Deleted bool   `json:"deleted"`
	}{name, true})
}

// storeError maps a failed store call that is not a send to an HTTP status.
func storeError(err error) (int, string) {
	if code, msg := sendError(err); code == http.StatusInsufficientStorage {
		return code, msg
	}
	return http.StatusServiceUnavailable, "store unavailable; retry: " + err.Error()
}

// sendGroup serves POST /v1/messages with group: a group of up to InlineGroup members is
// sent to within the request and answered like a list; a larger one gets a job.
func (r *Router) sendGroup(w http.ResponseWriter, req *http.Request, name string, t Message, base string, wait time.Duration) {
	if err := validGroupName("group", name); err != nil {
		r.badRequest(w, err, nil)
		return
	}
	g, ok := r.groups(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.StoreTimeout)
	members, size, err := g.GroupMembers(ctx, name, "", r.cfg.Fanout.InlineGroup)
	cancel()
	if err != nil {
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "read group " + name + ": " + msg})
		return
	}
	if size == 0 {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("group %q has no members", name), Field: "group"})
		return
	}
	if size <= r.cfg.Fanout.InlineGroup && len(members) == size {
		msgs, err := r.cfg.forRecipients(t, base, members)
		if err != nil {
			r.badRequest(w, err, nil)
			return
		}
		r.writeFanout(w, FanoutAnswer{ID: base, Group: name, Results: r.fanOut(req.Context(), msgs, wait)})
		return
	}
	view, created, err := r.createJob(req.Context(), name, size, t, base, wait)
	if err != nil {
		code, msg := storeError(err)
		writeJSON(w, code, ErrorBody{Error: "create job for group " + name + ": " + msg})
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+view.Job)
	if !created {
		// A retry of the request: the job it made already.
		view.Duplicate = true
	}
	writeJSON(w, http.StatusAccepted, view)
}
