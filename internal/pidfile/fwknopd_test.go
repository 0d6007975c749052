package pidfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationFwknopdLock: sesame and the real fwknopd 2.6 pointed at one PID file see each
// other's lock, both ways.
func TestIntegrationFwknopdLock(t *testing.T) {
	nstest.Require(t, "fwknopd", "iptables")
	ns := nstest.New(t)
	s := fwknoptest.StartServer(t, ns, fwknoptest.ServerOptions{Access: "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest"})
	p := filepath.Join(s.Dir, "run", "fwknopd.pid")
	if pid, running, err := Read(p); pid != s.PID || !running || err != nil {
		t.Errorf("Read of fwknopd's PID file = %d, %v, %v; want %d running", pid, running, err, s.PID)
	}
	_, err := Acquire(p)
	wantHeld(t, err, p, s.PID)

	s.Stop(t) // fwknopd leaves its file behind
	if _, running, _ := Read(p); running {
		t.Error("fwknopd's lock outlived it")
	}
	f, err := Acquire(p)
	if err != nil {
		t.Fatalf("stale fwknopd PID file blocked a start: %v", err)
	}
	defer f.Release()
	conf, access := filepath.Join(s.Dir, "fwknopd.conf"), filepath.Join(s.Dir, "access.conf")
	out, _ := ns.Command("fwknopd", "-c", conf, "-a", access, "-S").CombinedOutput()
	if want := fmt.Sprintf("pid=%d", os.Getpid()); !strings.Contains(string(out), want) {
		t.Errorf("fwknopd -S does not see our lock (want %q):\n%s", want, out)
	}
	// fwknopd must refuse to start; if it starts, it is killed after a while and the test fails.
	cmd := ns.Command("fwknopd", "-c", conf, "-a", access, "-f")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	guard := time.AfterFunc(15*time.Second, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	guard.Stop()
	if want := fmt.Sprintf("PID=%d", os.Getpid()); !strings.Contains(buf.String(), want) {
		t.Errorf("fwknopd started while we hold its PID file (%v; want %q):\n%s", err, want, buf.String())
	}
}
