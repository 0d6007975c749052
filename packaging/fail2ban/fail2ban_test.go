package fail2ban

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
)

// matches runs fail2ban-regex with the filter on the log lines and returns the address of
// each matched line, in order.
func matches(t *testing.T, lines []string) []string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "sesame.log")
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	filter, err := filepath.Abs("filter.d/sesame.conf")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fail2ban-regex", "--raw", "-o", "ip", log, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	var ips []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ips = append(ips, l)
		}
	}
	return ips
}

// send sends payload over UDP from the namespace to addr.
func send(t *testing.T, ns *nstest.NS, addr, payload string) {
	t.Helper()
	if err := ns.Do(t, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationFilter runs the real server in a namespace, sends it a forged packet over
// IPv4, a malformed one over IPv6 and a good knock, and runs fail2ban-regex with the filter on
// the server's log: the two rejections' sources are found, the grant line is not; the same
// lines as journald shows them (no time=, fail2ban's "host ident[pid]:" prefix) match too, and
// a rejection for a server fault does not.
func TestIntegrationFilter(t *testing.T) {
	nstest.Require(t, "nft", "fail2ban-regex")
	srvNS, cliNS := nstest.Pair(t)
	keys := spa.Keys{Key: []byte("fail2ban-test-key"), HMACKey: []byte("fail2ban-test-hmac")}
	s := sesametest.StartServer(t, srvNS, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 30\n", keys.Key, keys.HMACKey)})

	knock := func(k spa.Keys, allow string) string {
		m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: allow + ",tcp/22"}
		w, err := spa.Encode(&m, k, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	forged := keys
	forged.HMACKey = []byte("not-the-hmac-key")
	send(t, cliNS, nstest.SrvIP4+":62201", knock(forged, nstest.CliIP4))
	send(t, cliNS, "["+nstest.SrvIP6+"]:62201", "not an SPA packet")
	send(t, cliNS, nstest.SrvIP4+":62201", knock(keys, nstest.CliIP4))
	s.WaitLog(t, 2, 5*time.Second, `msg="SPA packet rejected"`)
	s.WaitLog(t, 1, 5*time.Second, `msg="access granted"`, "src="+nstest.CliIP4)

	var rejected, granted, all []string
	for _, l := range strings.Split(s.Log(), "\n") {
		switch {
		case strings.Contains(l, `msg="SPA packet rejected"`):
			rejected = append(rejected, l)
		case strings.Contains(l, `msg="access granted"`):
			granted = append(granted, l)
		}
		if strings.HasPrefix(l, "time=") {
			all = append(all, l)
		}
	}
	want := []string{nstest.CliIP4, nstest.CliIP6}
	if got := matches(t, rejected); !slices.Equal(got, want) {
		t.Errorf("rejection lines: fail2ban found %q, want %q\n%s", got, want, strings.Join(rejected, "\n"))
	}
	if got := matches(t, granted); len(got) != 0 {
		t.Errorf("grant line matched (%q):\n%s", got, strings.Join(granted, "\n"))
	}
	if got := matches(t, all); !slices.Equal(got, want) {
		t.Errorf("whole log: fail2ban found %q, want %q\n%s", got, want, s.Log())
	}

	// As the systemd backend hands journal entries to the filter: the journal's date, then
	// "host ident[pid]: MESSAGE", where MESSAGE is the line without time= (internal/logging).
	timeField := regexp.MustCompile(`^time=\S+ `)
	var journal []string
	for _, l := range rejected {
		journal = append(journal, time.Now().Format(time.DateTime)+" gw1 sesame[812]: "+timeField.ReplaceAllString(l, ""))
	}
	if got := matches(t, journal); !slices.Equal(got, want) {
		t.Errorf("journal-style lines: fail2ban found %q, want %q\n%s", got, want, strings.Join(journal, "\n"))
	}

	// A rejection that is the server's fault is not the client's.
	reason := regexp.MustCompile(`reason="[^"]*"|reason=\S+`)
	var faults []string
	for _, r := range []string{`"firewall error"`, `"internal error"`} {
		faults = append(faults, reason.ReplaceAllString(rejected[0], "reason="+r))
	}
	if got := matches(t, faults); len(got) != 0 {
		t.Errorf("server-fault lines matched (%q):\n%s", got, strings.Join(faults, "\n"))
	}
}
