package fwknoptest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// ClientResult is what one run of the real fwknop client produced.
type ClientResult struct {
	Wire   string // the packet as saved by -B, without the trailing newline
	Dump   Dump   // the first "SPA Field Values" block of the -v output (before sending)
	Output string // the client's whole stdout and stderr
}

// ClientFlags are the flags Client always passes before the caller's arguments.
var ClientFlags = []string{"-T", "--no-save-args", "--no-rc-file", "-v"}

// RunClient runs "fwknop -T -B FILE --no-save-args --no-rc-file -v ARGS..." with HOME set to
// a fresh directory under dir, and returns the saved packet and the parsed field dump. -T
// builds the packet without sending it, so no network is touched. When args has neither -D
// nor --destination, "-D 127.0.0.1" is added (fwknop requires a destination even in -T mode).
// dir must exist; RunClient leaves its files there.
//
// RunClient is the non-testing form of Client, for benchmarks and tools.
func RunClient(dir string, args ...string) (ClientResult, error) {
	home, err := os.MkdirTemp(dir, "fwknop-home-")
	if err != nil {
		return ClientResult{}, fmt.Errorf("fwknop client: %w", err)
	}
	pkt := filepath.Join(home, "spa.pkt")
	full := append(append([]string{}, ClientFlags...), "-B", pkt)
	if !hasDestination(args) {
		full = append(full, "-D", "127.0.0.1")
	}
	full = append(full, args...)
	cmd := exec.Command("fwknop", full...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return ClientResult{Output: out.String()}, fmt.Errorf("fwknop %q: %w\n%s", args, err, out.String())
	}
	wire, err := os.ReadFile(pkt)
	if err != nil {
		return ClientResult{Output: out.String()}, fmt.Errorf("fwknop %q: read -B file: %w", args, err)
	}
	res := ClientResult{Wire: strings.TrimRight(string(wire), "\r\n"), Output: out.String()}
	if res.Dump, err = ParseDump(res.Output); err != nil {
		return res, fmt.Errorf("fwknop %q: parse -v output: %w\n%s", args, err, res.Output)
	}
	if res.Dump.FinalSPAData != res.Wire {
		return res, fmt.Errorf("fwknop %q: -v Final SPA Data %q differs from the -B packet %q",
			args, res.Dump.FinalSPAData, res.Wire)
	}
	return res, nil
}

// Client runs the real fwknop client (see RunClient) and fails t if it fails. It calls
// nstest.Require(t, "fwknop"), so it skips without root or the binary (fails under CI).
func Client(t testing.TB, args ...string) ClientResult {
	t.Helper()
	nstest.Require(t, "fwknop")
	res, err := RunClient(t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func hasDestination(args []string) bool {
	for _, a := range args {
		if a == "-D" || a == "--destination" || strings.HasPrefix(a, "--destination=") {
			return true
		}
	}
	return false
}

// Knock runs the real fwknop client inside ns so that it really sends its packet (no -T):
// "fwknop --no-save-args --no-rc-file -v ARGS..." with HOME set to a fresh directory. Pass
// -D (the server address as seen from ns), -A, -a and the key flags. It returns the
// client's output and fails t if the client fails.
func Knock(t testing.TB, ns *nstest.NS, args ...string) string {
	t.Helper()
	nstest.Require(t, "fwknop")
	full := append([]string{"--no-save-args", "--no-rc-file", "-v"}, args...)
	cmd := ns.Command("fwknop", full...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("[%s] fwknop %q: %v\n%s", ns.Name, args, err, out)
	}
	return string(out)
}
