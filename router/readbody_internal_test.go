package router

import (
	"bytes"
	"strings"
	"testing"
)

// TestReadBodyReservesOnlyWhatArrives: a declared Content-Length reserves at most
// firstRead before the bytes come (a client declaring 60 MB and sending 5 must not cost
// 60 MB a connection); a body longer than that is still read whole.
func TestReadBodyReservesOnlyWhatArrives(t *testing.T) {
	raw, err := readBody(strings.NewReader("hello"), 60<<20)
	if err != nil || string(raw) != "hello" || cap(raw) > firstRead+1 {
		t.Fatalf("5 bytes under a declared 60 MB: %q, %v, a buffer of %d bytes", raw, err, cap(raw))
	}
	big := bytes.Repeat([]byte("x"), 3*firstRead+7)
	raw, err = readBody(bytes.NewReader(big), int64(len(big)))
	if err != nil || !bytes.Equal(raw, big) {
		t.Fatalf("a %d-byte body read as %d bytes, %v", len(big), len(raw), err)
	}
}
