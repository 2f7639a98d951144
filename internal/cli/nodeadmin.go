package cli

import (
	"flag"
	"os"
	"strings"
)

// adminOptions are the flags of a node's admin port beyond its address: whether it
// serves /debug/pprof, and the token that guards it.
type adminOptions struct {
	pprof     bool
	tokenFile string
}

func (o *adminOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.pprof, "pprof", false,
		"serve /debug/pprof on --admin (only on a loopback address, or with --admin-token-file)")
	fs.StringVar(&o.tokenFile, "admin-token-file", "",
		"file holding the bearer token every /debug/pprof request must carry (/healthz and /metrics stay open)")
}

// get returns whether to serve pprof and the admin token ("" when none).
func (o *adminOptions) get() (bool, string, error) {
	if o.tokenFile == "" {
		return o.pprof, "", nil
	}
	b, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return false, "", usagef("--admin-token-file: %v", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return false, "", usagef("--admin-token-file %s: the file is empty", o.tokenFile)
	}
	return o.pprof, tok, nil
}
