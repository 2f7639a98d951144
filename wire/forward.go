package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxItems is the most items one Forward may carry.
const MaxItems = 10_000

// Forward carries node-to-node traffic that the wire protocol does not interpret: a node's
// subscription routes, publishes forwarded to the nodes with matching subscribers. Each
// item is a kind byte and an opaque body (the node's own encoding), and takes one of
// len(Items) consecutive sequence numbers: item i is answered by its own Result, with
// sequence number Seq+i, once the receiving node has settled it. Items of one Forward reach
// the handler in order, and so do the Forwards of one connection.
type Forward struct {
	Seq   uint64 // set by the Conn (the first of len(Items) numbers); callers leave it zero
	From  string // the sending node's id
	Epoch int64  // the sending node's registration epoch
	Items []Item // 1 to MaxItems
}

// Item is one unit of a Forward.
type Item struct {
	Kind byte
	Body []byte
}

func (Forward) frameType() byte { return typeForward }

func (f Forward) appendBody(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, f.Seq)
	dst = appendString(dst, f.From)
	dst = binary.AppendVarint(dst, f.Epoch)
	dst = binary.AppendUvarint(dst, uint64(len(f.Items)))
	for _, it := range f.Items {
		dst = append(dst, it.Kind)
		dst = appendBytes(dst, it.Body)
	}
	return dst
}

func (f Forward) validate() error {
	switch {
	case f.From == "":
		return errors.New("empty sender")
	case len(f.Items) == 0:
		return errors.New("no items")
	case len(f.Items) > MaxItems:
		return fmt.Errorf("%d items: at most %d", len(f.Items), MaxItems)
	}
	return nil
}

// decodeForward copies every body into one buffer (each body's capacity ends where it does).
func decodeForward(b []byte) (Forward, error) {
	d := decoder{b: b, what: "forward"}
	f := Forward{Seq: d.uvarint(), From: d.string(), Epoch: d.varint()}
	n := d.count(2, MaxItems) // a kind byte and a one-byte length
	items := d.b
	total := 0
	for range n {
		d.oneByte()
		total += len(d.field())
	}
	if err := d.done(); err != nil {
		return Forward{}, err
	}
	if n == 0 {
		return f, nil
	}
	buf := make([]byte, 0, total)
	f.Items = make([]Item, n)
	d = decoder{b: items, what: "forward"}
	for i := range f.Items {
		f.Items[i].Kind = d.oneByte()
		if p := d.field(); len(p) > 0 {
			start := len(buf)
			buf = append(buf, p...)
			f.Items[i].Body = buf[start:len(buf):len(buf)]
		}
	}
	return f, nil
}

// ForwardHandler is implemented by a Handler that takes node-to-node Forwards; a server
// whose Handler does not answers every item with StatusBadRequest. Forward is called on the
// connection's reader goroutine like the other methods, must not block, and must call reply
// exactly once for every item, from any goroutine.
type ForwardHandler interface {
	Forward(ctx context.Context, f Forward, reply func(i int, r Result))
}

// Forward sends f to the node and returns at once; it sets f.Seq. done is called exactly
// once per item, as for Deliver (with the same errors and the same rules).
func (c *Conn) Forward(f Forward, done func(i int, r Result, err error)) {
	if done == nil {
		done = func(int, Result, error) {}
	}
	n := len(f.Items)
	if err := f.validate(); err != nil {
		failAll(done, n, fmt.Errorf("forward: %w: %w", ErrInvalid, err))
		return
	}
	f.Seq = c.seq.Add(uint64(n)) - uint64(n) + 1
	p := c.bufs.Get().(*[]byte)
	defer c.putBuf(p)
	buf, start := beginFrame((*p)[:0], typeForward)
	*p = endFrame(f.appendBody(buf), start)
	c.sendMany("forward", *p, f.Seq, n, done)
}
