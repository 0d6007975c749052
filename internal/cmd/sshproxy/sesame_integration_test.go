package sshproxy

import (
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationSesameSSHBehindSesame: a real sshd listens on 10.99.0.1:22 in a server
// namespace where sesame's own server (UDP-server mode, SESAME_GUARD_PORTS tcp/22) keeps port
// 22 closed. From the client namespace, "ssh -o ProxyCommand='sesame ssh-proxy %h %p'" must
// knock with the ~/.fwknoprc stanza that "sesame knock --save-rc-stanza" wrote, get in, and run
// a command.
func TestIntegrationSesameSSHBehindSesame(t *testing.T) {
	nstest.Require(t, "nft", "sshd", "ssh", "ssh-keygen")
	t.Parallel()
	srvNS, cliNS := nstest.Pair(t)
	keyB64, hmacB64 := "c2VzYW1lLWUyZS1zc2gta2V5", "c2VzYW1lLWUyZS1zc2gtaG1hYy1rZXk="
	srv := sesametest.StartServer(t, srvNS, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: "SOURCE ANY\nKEY_BASE64 " + keyB64 + "\nHMAC_KEY_BASE64 " + hmacB64 +
			"\nOPEN_PORTS tcp/22\nREQUIRE_SOURCE_ADDRESS Y\nFW_ACCESS_TIMEOUT 30\n"})

	// sshd with a throwaway host key and an authorized user key (checked from inside the
	// server namespace: loopback is not guarded).
	sshd := sesametest.StartSSHD(t, srvNS, sesametest.NewSSHKeys(t, nstest.SrvIP4), nstest.SrvIP4)
	ssh22 := sshd.Addr

	// Closed from the client before the knock.
	if r := sesametest.Dial(t, cliNS, ssh22, 500*time.Millisecond); r != sesametest.Timeout {
		t.Fatalf("port 22 from the client before any knock: %v, want a timeout", r)
	}

	// The client's ~/.fwknoprc, written by sesame knock itself.
	home := saveStanza(t, cliNS, keyB64, hmacB64)
	if len(srv.LogLines(`msg="access granted"`)) != 0 {
		t.Fatalf("-T knocked:\n%s", srv.Log())
	}

	sshViaProxy(t, cliNS, sshd, home, "sesame server", srv.Log)
	if g := srv.LogLines(`msg="access granted"`); len(g) != 1 || !strings.Contains(g[0], " src="+nstest.CliIP4+" ") ||
		!strings.Contains(g[0], " allow="+nstest.CliIP4+" ") || !strings.Contains(g[0], " ports=tcp/22 ") ||
		!strings.Contains(g[0], " timeout=30s ") {
		t.Errorf("want one grant of tcp/22 to %s for 30 s, got:\n%s", nstest.CliIP4, srv.Log())
	}
}
