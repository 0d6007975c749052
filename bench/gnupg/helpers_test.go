package gnupg

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/benchtest"
	"github.com/sesame-spa/sesame/internal/nstest"
)

// sendFrom sends one datagram from local in ns to addr.
func sendFrom(t testing.TB, ns *nstest.NS, local, addr string, payload []byte) {
	t.Helper()
	err := ns.Do(t, func() error {
		c, err := benchtest.DialUDP(local, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// agentPIDs returns the PIDs of the gpg-agents whose command line names home.
func agentPIDs(home string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := string(b)
		if strings.Contains(cl, "gpg-agent") && strings.Contains(cl, home) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitIdle returns when cpu stops growing over a 200 ms poll (or after limit).
func waitIdle(cpu func() time.Duration, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for prev := time.Duration(-1); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		c := cpu()
		if c == prev {
			return
		}
		prev = c
	}
}
