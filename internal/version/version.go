// Package version reports what sesame was built from: the module version, the VCS revision
// and whether the work tree had local changes, and the Go version, all read from the build
// information the Go toolchain embeds in every binary (runtime/debug.ReadBuildInfo).
//
// The revision is there only when the binary was built inside a git checkout with VCS
// stamping on (go build's default -buildvcs=auto; GOFLAGS=-buildvcs=false turns it off). "go
// install module@version" stamps the module version instead.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what the build information says about the binary. Empty fields were not recorded.
type Info struct {
	Version  string // module version ("v1.2.3", a pseudo-version, or "" for a devel build)
	Revision string // vcs.revision: the full commit hash
	Time     string // vcs.time: the commit time, RFC 3339
	Modified bool   // vcs.modified: the work tree had uncommitted changes
	Go       string // the Go version that built the binary ("go1.26.8")
}

// Get returns the running binary's Info. Without build information (a binary built without
// module support) only Go is set, from runtime.Version.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Go: runtime.Version()}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts Info from bi. A main module version of "(devel)" counts as none.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, Go: bi.GoVersion}
	if in.Version == "(devel)" {
		in.Version = ""
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String returns the running binary's version line for name, as printed by --version and -V:
//
//	sesame v1.2.3 (rev 0123456789ab, go1.26.8)
//	sesame devel (rev 0123456789ab+modified, go1.26.8)
//	sesame devel (go1.26.8)
func String(name string) string { return Get().String(name) }

// String formats in as the version line for name (see the package-level String).
func (in Info) String(name string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(' ')
	if in.Version != "" {
		b.WriteString(in.Version)
	} else {
		b.WriteString("devel")
	}
	b.WriteString(" (")
	if in.Revision != "" {
		b.WriteString("rev ")
		b.WriteString(short(in.Revision))
		if in.Modified {
			b.WriteString("+modified")
		}
		b.WriteString(", ")
	}
	b.WriteString(in.Go)
	b.WriteByte(')')
	return b.String()
}

// short abbreviates a commit hash to 12 characters, as "go version -m" readers usually do.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
