// Package buildinfo says which build of a command is running, for its
// --version.
package buildinfo

import "runtime/debug"

// Version is the module's version as the build recorded it, with the VCS
// revision when there is one (and "(modified)" for a build from a changed
// tree), then the Go version.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			v += " " + s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			v += " (modified)"
		}
	}
	return v + " " + info.GoVersion
}
