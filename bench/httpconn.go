package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// httpConn is a minimal HTTP/1.1 keep-alive client for one sender: the request is written
// and the answer read on the caller's goroutine, with no per-request allocation beyond the
// answer's growth. net/http's transport hands every request to two goroutines of its own,
// which costs the generator more CPU than the router spends parsing the request. It speaks
// only what the router answers: Content-Length or chunked bodies, "Connection: close".
// Not safe for concurrent use.
type httpConn struct {
	host    string // host:port to dial
	header  []byte // "Host: ...\r\n" and fixed headers
	timeout time.Duration

	conn net.Conn
	r    *bufio.Reader
	req  bytes.Buffer
}

// newHTTPConn returns a client for base, an http:// URL.
func newHTTPConn(base, token string, timeout time.Duration) (*httpConn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("API %q: %w", base, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("API %q: only http:// is supported", base)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	h := "Host: " + u.Host + "\r\nContent-Type: application/json\r\nUser-Agent: switchboard-bench\r\n"
	if token != "" {
		h += "Authorization: Bearer " + token + "\r\n"
	}
	return &httpConn{host: host, header: []byte(h), timeout: timeout}, nil
}

// Close closes the connection.
func (h *httpConn) Close() {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
}

// Post sends body to path and reads the answer into resp. On any error the connection is
// closed (the next Post dials again) and the request's outcome is unknown.
func (h *httpConn) Post(ctx context.Context, path string, body []byte, resp *bytes.Buffer) (status int, err error) {
	if h.conn == nil {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := d.DialContext(dctx, "tcp", h.host)
		cancel()
		if err != nil {
			return 0, err
		}
		h.conn, h.r = c, bufio.NewReaderSize(c, 16<<10)
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	// A cancelled ctx aborts the exchange by expiring the deadline.
	dl := time.Now().Add(h.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = h.conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = h.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	h.req.Reset()
	h.req.WriteString("POST ")
	h.req.WriteString(path)
	h.req.WriteString(" HTTP/1.1\r\n")
	h.req.Write(h.header)
	h.req.WriteString("Content-Length: ")
	h.req.WriteString(strconv.Itoa(len(body)))
	h.req.WriteString("\r\n\r\n")
	h.req.Write(body)
	if _, err := h.conn.Write(h.req.Bytes()); err != nil {
		return 0, fmt.Errorf("write request: %w", err)
	}
	return h.readResponse(resp)
}

var errBadResponse = errors.New("malformed HTTP response")

// readResponse reads one response; the body goes to resp.
func (h *httpConn) readResponse(resp *bytes.Buffer) (int, error) {
	line, err := h.line()
	if err != nil {
		return 0, fmt.Errorf("read status: %w", err)
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	length, chunked, closeAfter := -1, false, false
	for {
		line, err := h.line()
		if err != nil {
			return 0, fmt.Errorf("read header: %w", err)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, fmt.Errorf("%w: header %q", errBadResponse, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, fmt.Errorf("%w: Content-Length %q", errBadResponse, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		}
	}
	resp.Reset()
	switch {
	case chunked:
		if err := h.readChunked(resp); err != nil {
			return 0, err
		}
	case length >= 0:
		if length > 64<<20 {
			return 0, fmt.Errorf("%w: body of %d bytes", errBadResponse, length)
		}
		if _, err := io.CopyN(resp, h.r, int64(length)); err != nil {
			return 0, fmt.Errorf("read body: %w", err)
		}
	default:
		return 0, fmt.Errorf("%w: no Content-Length", errBadResponse)
	}
	if closeAfter {
		h.Close()
	}
	return status, nil
}

func (h *httpConn) readChunked(resp *bytes.Buffer) error {
	for {
		line, err := h.line()
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil || resp.Len()+int(n) > 64<<20 {
			return fmt.Errorf("%w: chunk size %q", errBadResponse, line)
		}
		if n == 0 {
			for { // trailers, then the blank line
				l, err := h.line()
				if err != nil {
					return err
				}
				if len(l) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(resp, h.r, int64(n)); err != nil {
			return fmt.Errorf("read chunk: %w", err)
		}
		if l, err := h.line(); err != nil || len(l) != 0 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errBadResponse)
		}
	}
}

// line reads a line without its CRLF; it is valid until the next read.
func (h *httpConn) line() ([]byte, error) {
	l, err := h.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(l[:len(l)-1], []byte("\r")), nil
}
