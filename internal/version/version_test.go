package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "c2ad0fbe3dcc0b5b54b69009570863d250837a3d"
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			"sesame v1.2.3 (rev c2ad0fbe3dcc, go1.26.8)"},
		{"modified", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}},
			"sesame devel (rev c2ad0fbe3dcc+modified, go1.26.8)"},
		{"bare", debug.BuildInfo{GoVersion: "go1.26.8"}, "sesame devel (go1.26.8)"},
		{"short rev", debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}},
			"sesame devel (rev abc, go1.26.8)"},
	} {
		if got := FromBuildInfo(&tc.bi).String("sesame"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	in := FromBuildInfo(&debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}})
	if in.Time != "2026-01-02T03:04:05Z" {
		t.Errorf("Time %q", in.Time)
	}
}

func TestGet(t *testing.T) {
	if got := Get(); got.Go != runtime.Version() {
		t.Errorf("Get().Go = %q, want %q", got.Go, runtime.Version())
	}
	if s := String("sesame server"); !strings.HasPrefix(s, "sesame server ") || !strings.HasSuffix(s, runtime.Version()+")") {
		t.Errorf("String: %q", s)
	}
}

// TestBuiltBinary builds a program with VCS stamping on, as "go build" does in a checkout by
// default, and checks that it reports the checkout's commit.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout (or no git): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./testdata/printversion")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(out))
	if want := "(rev " + strings.TrimSpace(string(head))[:12]; !strings.Contains(got, want) {
		t.Errorf("built binary says %q, want it to contain %q", got, want)
	}
	if !strings.HasPrefix(got, "sesame v") {
		t.Errorf("built binary says %q: no module version (Go stamps a pseudo-version in a checkout)", got)
	}
}
