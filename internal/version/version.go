// Package version reports the version of this build: what a release build stamped into
// it with -ldflags, or else what the Go toolchain recorded (the module version, the VCS
// revision).
package version

import (
	"runtime"
	"runtime/debug"
)

// Version and Commit are stamped at link time by a release build (scripts/release.sh):
//
//	go build -trimpath -ldflags "-X github.com/switchboard-mqtt/switchboard/internal/version.Version=v1.2.3 \
//	    -X github.com/switchboard-mqtt/switchboard/internal/version.Commit=$(git rev-parse HEAD)"
//
// The linker can set only a string variable that is uninitialized or initialized to a
// constant, so they stay empty here and Get falls back to the build information.
// Read them through Get.
var (
	Version string
	Commit  string
)

// Info describes this build.
type Info struct {
	Version  string `json:"version"`  // v1.2.3; dev-<revision> or dev when not stamped
	Commit   string `json:"commit"`   // the full VCS revision, or "unknown"
	Modified bool   `json:"modified"` // built from a work tree with uncommitted changes (when known)
	Go       string `json:"go"`       // the Go toolchain
	Platform string `json:"platform"` // GOOS/GOARCH
}

// Get returns this build's description.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, Commit, bi)
}

// String is the version alone, as nodes register it and `status` shows it.
func String() string { return Get().Version }

// resolve prefers the stamped values and fills the rest from the build information.
func resolve(stamped, commit string, bi *debug.BuildInfo) Info {
	info := Info{Version: stamped, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var revision string
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Commit == "" {
		info.Commit = revision
	}
	if info.Version == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "dev"
		if len(info.Commit) >= 12 {
			info.Version = "dev-" + info.Commit[:12]
		}
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
