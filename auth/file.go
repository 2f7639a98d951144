package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// The credentials and ACL file, as JSON:
//
//	{
//	  "users": {
//	    "alice": {
//	      "password": "$2a$12$...",
//	      "clients": ["alice", "alice-phone-*"],
//	      "acl": [{"topic": "events/%c/#", "access": "write"}]
//	    }
//	  },
//	  "acl": [{"topic": "status/%u", "access": "readwrite"}],
//	  "revoked": {"jti": ["8f14e45f"], "sub": ["lost-phone-17"]}
//	}
//
// "revoked" lists JWTs that are no longer accepted, by their jti or by their sub (the
// client id): a leaked token is revoked by adding it here, and the sessions it opened end
// at the next reload.
//
// Unknown fields, duplicate keys, null values and trailing data are refused, so a typo
// never silently drops a rule.

// fileData is the file as written, before validation. Empty lists and maps are nil, so
// decoding, encoding and decoding again gives the same value.
type fileData struct {
	Users   map[string]*userData `json:"users,omitempty"`
	ACL     []ruleData           `json:"acl,omitempty"`
	Revoked *revokedData         `json:"revoked,omitempty"`
}

// revokedData lists revoked JWTs.
type revokedData struct {
	JTI []string `json:"jti,omitempty"`
	Sub []string `json:"sub,omitempty"`
}

type userData struct {
	Password string     `json:"password"`
	Clients  []string   `json:"clients,omitempty"` // nil: the default ["%u"]
	ACL      []ruleData `json:"acl,omitempty"`
}

type ruleData struct {
	Topic  string `json:"topic"`
	Access string `json:"access"`
}

// Access values of a rule.
const (
	accessRead      = "read"
	accessWrite     = "write"
	accessReadWrite = "readwrite"
)

// maxFileSize bounds what is read: a credentials file is small, and a runaway file must
// not exhaust memory on every poll.
const maxFileSize = 16 << 20

// minBcryptCost is the lowest bcrypt cost accepted in the file.
const minBcryptCost = 10

// hashCost is the bcrypt cost HashPassword uses.
const hashCost = 12

// maxPasswordLen is bcrypt's limit: it ignores bytes past the 72nd, so a longer password
// is refused rather than silently truncated.
const maxPasswordLen = 72

// decodeFile parses the file's structure: JSON syntax, known fields, types. It does not
// check the values (see compile). name is used in errors.
func decodeFile(name string, data []byte) (*fileData, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("auth file %s: empty (write {} for a file without users or rules)", name)
	}
	d := &decoder{dec: json.NewDecoder(bytes.NewReader(data)), data: data, name: name}
	d.dec.UseNumber()
	fd := &fileData{}
	err := d.object("", func(key string) error {
		switch key {
		case "users":
			return d.object("users", func(user string) error {
				if fd.Users == nil {
					fd.Users = map[string]*userData{}
				}
				u, err := d.user(fmt.Sprintf("user %q", user))
				fd.Users[user] = u
				return err
			})
		case "acl":
			rules, err := d.rules("acl rule")
			fd.ACL = rules
			return err
		case "revoked":
			r := &revokedData{}
			fd.Revoked = r
			return d.object("revoked", func(key string) error {
				var list *[]string
				switch key {
				case "jti":
					list = &r.JTI
				case "sub":
					list = &r.Sub
				default:
					return d.errorf("revoked: unknown field %q (want jti or sub)", key)
				}
				return d.array("revoked: "+key, func(i int) error {
					s, err := d.str(fmt.Sprintf("revoked: %s[%d]", key, i))
					*list = append(*list, s)
					return err
				})
			})
		}
		return d.errorf("unknown field %q (want users, acl or revoked)", key)
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, d.errorf("unexpected data after the JSON object")
	}
	return fd, nil
}

// decoder walks the JSON token stream for the file's fixed schema, so that errors can name
// the line, the user and the rule index.
type decoder struct {
	dec  *json.Decoder
	data []byte
	name string
}

// errorf returns an error naming the file and the position the decoder has reached.
func (d *decoder) errorf(format string, args ...any) error {
	line, col := position(d.data, d.dec.InputOffset())
	return fmt.Errorf("auth file %s:%d:%d: %s", d.name, line, col, fmt.Sprintf(format, args...))
}

// wrap gives a decoding error (syntax, unexpected EOF) the file and position.
func (d *decoder) wrap(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(d.data, se.Offset)
		return fmt.Errorf("auth file %s:%d:%d: %v", d.name, line, col, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("auth file %s: unexpected end of file", d.name)
	}
	return d.errorf("%v", err)
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// token reads the next token; what names the context for errors.
func (d *decoder) token() (json.Token, error) {
	t, err := d.dec.Token()
	if err != nil {
		return nil, d.wrap(err)
	}
	return t, nil
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

// object reads an object, calling field for each key (which must consume the value).
// Duplicate keys are refused. ctx names the object in errors ("" for the top level).
func (d *decoder) object(ctx string, field func(key string) error) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return d.errorf("%swant an object, got %s", prefix(ctx), describe(t))
	}
	seen := map[string]bool{}
	for d.dec.More() {
		t, err := d.token()
		if err != nil {
			return err
		}
		key := t.(string) // the decoder only yields string keys inside an object
		if seen[key] {
			return d.errorf("%skey %q appears twice", prefix(ctx), key)
		}
		seen[key] = true
		if err := field(key); err != nil {
			return err
		}
	}
	_, err = d.token() // '}'
	return err
}

// array reads an array, calling elem for each element (which must consume it).
func (d *decoder) array(ctx string, elem func(i int) error) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if t != json.Delim('[') {
		return d.errorf("%swant an array, got %s", prefix(ctx), describe(t))
	}
	for i := 0; d.dec.More(); i++ {
		if err := elem(i); err != nil {
			return err
		}
	}
	_, err = d.token() // ']'
	return err
}

func (d *decoder) str(ctx string) (string, error) {
	t, err := d.token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", d.errorf("%swant a string, got %s", prefix(ctx), describe(t))
	}
	return s, nil
}

func prefix(ctx string) string {
	if ctx == "" {
		return ""
	}
	return ctx + ": "
}

func (d *decoder) user(ctx string) (*userData, error) {
	u := &userData{}
	err := d.object(ctx, func(key string) error {
		var err error
		switch key {
		case "password":
			u.Password, err = d.str(ctx + ": password")
		case "clients":
			err = d.array(ctx+": clients", func(i int) error {
				s, err := d.str(fmt.Sprintf("%s: clients[%d]", ctx, i))
				u.Clients = append(u.Clients, s)
				return err
			})
			if err == nil && u.Clients == nil {
				u.Clients = []string{} // present but empty: compile refuses it
			}
		case "acl":
			u.ACL, err = d.rules(ctx + ": acl rule")
		default:
			err = d.errorf("%s: unknown field %q (want password, clients or acl)", ctx, key)
		}
		return err
	})
	return u, err
}

func (d *decoder) rules(ctx string) ([]ruleData, error) {
	var rules []ruleData
	err := d.array(strings.TrimSuffix(ctx, " rule"), func(i int) error {
		rctx := fmt.Sprintf("%s %d", ctx, i)
		var r ruleData
		err := d.object(rctx, func(key string) error {
			var err error
			switch key {
			case "topic":
				r.Topic, err = d.str(rctx + ": topic")
			case "access":
				r.Access, err = d.str(rctx + ": access")
			default:
				err = d.errorf("%s: unknown field %q (want topic or access)", rctx, key)
			}
			return err
		})
		rules = append(rules, r)
		return err
	})
	return rules, err
}

// encode renders the file as indented JSON with a final newline. Users come out sorted
// by name.
func (fd *fileData) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ruleSet is one immutable snapshot of the file, compiled. It is shared by all
// goroutines and never modified after compile returns.
type ruleSet struct {
	users       map[string]*user
	read, write []rule // for every authenticated client
	dummyCost   int    // bcrypt cost of the dummy comparison for unknown users
	sum         [sha256.Size]byte

	// Client ids the users' "clients" patterns cover, reserved for those users: an
	// anonymous client may not take one.
	reservedIDs      map[string]bool
	reservedPrefixes []string

	revokedJTI, revokedSub map[string]bool
}

// reserved reports whether a user's clients patterns cover clientID.
func (rs *ruleSet) reserved(clientID string) bool {
	if rs.reservedIDs[clientID] {
		return true
	}
	for _, p := range rs.reservedPrefixes {
		if strings.HasPrefix(clientID, p) {
			return true
		}
	}
	return false
}

type user struct {
	hash        []byte
	clients     []clientPattern
	read, write []rule
}

// clientPattern is one entry of a user's "clients": a client id, or a prefix when it ends
// in '*'; %u stands for the username.
type clientPattern struct {
	text     string // without the '*'
	wildcard bool
}

// expand is the pattern's text with %u replaced by username (and %% by %).
func (p clientPattern) expand(username string) string {
	want := strings.ReplaceAll(p.text, "%%", "\x00")
	want = strings.ReplaceAll(want, "%u", username)
	return strings.ReplaceAll(want, "\x00", "%")
}

func (p clientPattern) matches(username, clientID string) bool {
	want := p.expand(username)
	if p.wildcard {
		return strings.HasPrefix(clientID, want)
	}
	return clientID == want
}

// allowsClient reports whether the user may connect with clientID. An empty client id
// matches no pattern.
func (u *user) allowsClient(username, clientID string) bool {
	if clientID == "" {
		return false
	}
	for _, p := range u.clients {
		if p.matches(username, clientID) {
			return true
		}
	}
	return false
}

// parseRuleSet decodes and compiles a file.
func parseRuleSet(name string, data []byte, minCost int) (*ruleSet, error) {
	fd, err := decodeFile(name, data)
	if err != nil {
		return nil, err
	}
	rs, err := fd.compile(name, minCost)
	if err != nil {
		return nil, err
	}
	rs.sum = sha256.Sum256(data)
	return rs, nil
}

// compile validates every value and builds the rule set; password hashes must have at
// least bcrypt cost minCost. Errors name the file, the user or rule index, and the
// problem; they never include a password.
func (fd *fileData) compile(name string, minCost int) (*ruleSet, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("auth file %s: %s", name, fmt.Sprintf(format, args...))
	}
	rs := &ruleSet{users: make(map[string]*user, len(fd.Users))}
	var err error
	if rs.read, rs.write, err = compileRules(fd.ACL); err != nil {
		return nil, fail("acl %v", err)
	}
	costs := map[int]int{}
	names := make([]string, 0, len(fd.Users))
	for n := range fd.Users {
		names = append(names, n)
	}
	sort.Strings(names) // the first error is the same on every load
	for _, n := range names {
		ud := fd.Users[n]
		if err := checkUsername(n); err != nil {
			return nil, fail("user %q: %v", n, err)
		}
		u, err := compileUser(ud, minCost)
		if err != nil {
			return nil, fail("user %q: %v", n, err)
		}
		c, _ := bcrypt.Cost(u.hash)
		costs[c]++
		rs.users[n] = u
		for _, p := range u.clients {
			id := p.expand(n)
			if p.wildcard {
				rs.reservedPrefixes = append(rs.reservedPrefixes, id)
				continue
			}
			if rs.reservedIDs == nil {
				rs.reservedIDs = map[string]bool{}
			}
			rs.reservedIDs[id] = true
		}
	}
	if r := fd.Revoked; r != nil {
		rs.revokedJTI, rs.revokedSub = map[string]bool{}, map[string]bool{}
		for i, j := range r.JTI {
			if j == "" {
				return nil, fail("revoked jti[%d]: empty", i)
			}
			rs.revokedJTI[j] = true
		}
		for i, sub := range r.Sub {
			if sub == "" {
				return nil, fail("revoked sub[%d]: empty", i)
			}
			rs.revokedSub[sub] = true
		}
	}
	// The dummy comparison for unknown users costs what most users' do. Without users
	// there is nothing to tell apart, so the cheapest accepted cost does.
	rs.dummyCost = minCost
	for c, k := range costs {
		if k > costs[rs.dummyCost] || (k == costs[rs.dummyCost] && c > rs.dummyCost) {
			rs.dummyCost = c
		}
	}
	return rs, nil
}

// checkUsername: non-empty UTF-8 without control characters.
func checkUsername(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("the username is empty")
	case !utf8.ValidString(n):
		return fmt.Errorf("the username is not valid UTF-8")
	case strings.IndexFunc(n, unicode.IsControl) >= 0:
		return fmt.Errorf("the username contains a control character")
	}
	return nil
}

func compileUser(ud *userData, minCost int) (*user, error) {
	if ud.Password == "" {
		return nil, fmt.Errorf("password is missing (set one with `switchboard passwd`)")
	}
	cost, err := bcrypt.Cost([]byte(ud.Password))
	if err != nil {
		// never echo the value: it may be a plaintext password
		return nil, fmt.Errorf("password is not a bcrypt hash; plaintext passwords are refused (set one with `switchboard passwd`)")
	}
	if cost < minCost {
		return nil, fmt.Errorf("password hash has bcrypt cost %d; the minimum is %d (set it again with `switchboard passwd`)", cost, minCost)
	}
	u := &user{hash: []byte(ud.Password)}
	clients := ud.Clients
	if clients == nil {
		clients = []string{"%u"}
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("clients is empty, so the user could never connect; leave it out for the default [\"%%u\"]")
	}
	for i, c := range clients {
		p, err := compileClientPattern(c)
		if err != nil {
			return nil, fmt.Errorf("clients[%d]: %w", i, err)
		}
		u.clients = append(u.clients, p)
	}
	if u.read, u.write, err = compileRules(ud.ACL); err != nil {
		return nil, fmt.Errorf("acl %w", err)
	}
	return u, nil
}

func compileClientPattern(c string) (clientPattern, error) {
	switch {
	case c == "":
		return clientPattern{}, fmt.Errorf("empty client id pattern")
	case !utf8.ValidString(c):
		return clientPattern{}, fmt.Errorf("client id pattern %q is not valid UTF-8", c)
	case strings.IndexFunc(c, unicode.IsControl) >= 0:
		return clientPattern{}, fmt.Errorf("client id pattern %q contains a control character", c)
	}
	text, wildcard := strings.CutSuffix(c, "*")
	if strings.Contains(text, "*") {
		return clientPattern{}, fmt.Errorf("client id pattern %q: '*' is allowed only as the last character", c)
	}
	if err := checkPlaceholders(text, "u"); err != nil {
		return clientPattern{}, fmt.Errorf("client id pattern %q: %w", c, err)
	}
	return clientPattern{text: text, wildcard: wildcard}, nil
}

// compileRules splits rules into read and write lists. Errors start with the rule index.
func compileRules(rds []ruleData) (read, write []rule, err error) {
	for i, rd := range rds {
		r, err := newRule(rd.Topic)
		if err != nil {
			return nil, nil, fmt.Errorf("rule %d: %w", i, err)
		}
		switch rd.Access {
		case accessRead:
			read = append(read, r)
		case accessWrite:
			write = append(write, r)
		case accessReadWrite:
			read = append(read, r)
			write = append(write, r)
		case "":
			return nil, nil, fmt.Errorf("rule %d (%q): access is missing (want read, write or readwrite)", i, rd.Topic)
		default:
			return nil, nil, fmt.Errorf("rule %d (%q): access %q: want read, write or readwrite", i, rd.Topic, rd.Access)
		}
	}
	return read, write, nil
}
