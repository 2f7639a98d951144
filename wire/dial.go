package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
)

// Dial connects to a wire server at addr and completes the hello. Connecting and the hello
// together are bounded by opts.DialTimeout as well as by ctx. A refused hello returns an
// error wrapping ErrRefused that carries the server's reason. Invalid options are refused;
// zero fields take the defaults of DefaultDialOptions.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	opts = opts.withDefaults()
	return dial(ctx, addr, opts, AppendFrame(nil, Hello{Version: ProtocolVersion, Token: opts.Token}))
}

// dial is Dial with the hello frame given, so tests can send bad ones.
func dial(ctx context.Context, addr string, opts DialOptions, hello []byte) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if opts.TLS != nil {
		d := tls.Dialer{Config: opts.TLS}
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	ir := &idleReader{nc: nc} // no idle deadline until the hello is done
	br := bufio.NewReaderSize(ir, 32<<10)
	if err := sendHello(ctx, nc, br, hello, opts.MaxFrame); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return newConn(nc, ir, br, addr, opts), nil
}
