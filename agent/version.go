package agent

import (
	"runtime/debug"
	"sync"
)

// version is set at link time: -ldflags "-X github.com/migrated/migrated/agent.version=v1.2.3".
var version string

var versionOnce = sync.OnceValue(func() string {
	if version != "" {
		return version
	}
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += "+" + rev + dirty
		}
	}
	return v
})

// Version of this build.
func Version() string { return versionOnce() }
