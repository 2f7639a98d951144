package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name            string
		stamped, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"stamped wins", "v1.2.3", "feedface", vcs, Info{Version: "v1.2.3", Commit: "feedface", Modified: true}},
		{"version stamped, commit from vcs", "v1.2.3", "", vcs, Info{Version: "v1.2.3", Commit: rev, Modified: true}},
		{"unstamped build in a work tree", "", "", vcs, Info{Version: "dev-0123456789ab", Commit: rev, Modified: true}},
		{"go install of a tagged module", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, Info{Version: "v0.4.0", Commit: "unknown"}},
		{"nothing known", "", "", nil, Info{Version: "dev", Commit: "unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := resolve(tc.stamped, tc.commit, tc.bi)
			got.Go, got.Platform = "", ""
			if got != tc.want {
				t.Fatalf("resolve(%q, %q) = %+v, want %+v", tc.stamped, tc.commit, got, tc.want)
			}
		})
	}
}
