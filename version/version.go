// Package version is guichet's version, set at build time with
// -ldflags "-X github.com/guichet/guichet/version.Version=v1.2.3".
package version

import "runtime/debug"

// Version of this build.
var Version = "dev"

func init() {
	if Version != "dev" {
		return
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				Version = "dev-" + s.Value[:12]
			}
		}
	}
}
