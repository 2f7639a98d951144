package cli

import (
	"flag"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestProxyFlags: --proxy-trusted takes addresses and CIDR prefixes (an address is its own
// /32 or /128), a bad one is refused naming it, and it needs --proxy-protocol.
func TestProxyFlags(t *testing.T) {
	parse := func(args ...string) (bool, []netip.Prefix, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o proxyOptions
		o.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return o.get()
	}
	on, got, err := parse("--proxy-protocol", "--proxy-trusted", "10.1.2.3/8, 127.0.0.1,::1,2001:db8::/32")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("2001:db8::/32")}
	if err != nil || !on || !slices.Equal(got, want) {
		t.Fatalf("got %v %v %v, want %v", on, got, err, want)
	}
	if on, got, err := parse(); err != nil || on || got != nil {
		t.Fatalf("default: %v %v %v, want off", on, got, err)
	}
	if _, _, err := parse("--proxy-protocol", "--proxy-trusted", "10.0.0.300"); err == nil || !strings.Contains(err.Error(), "10.0.0.300") {
		t.Fatalf("bad address: %v, want an error naming it", err)
	}
	if _, _, err := parse("--proxy-trusted", "10.0.0.1"); err == nil || !strings.Contains(err.Error(), "--proxy-protocol") {
		t.Fatalf("--proxy-trusted alone: %v, want an error naming --proxy-protocol", err)
	}
}
