package gnupginterop

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/gpgtest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/server"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationGnuPGKnockConnect: sesame server guards tcp/22 in a namespace with a GnuPG
// stanza (keys in a GnuPG home made by gpg, HMAC on); the port is closed; Debian's fwknop -g
// knocks from the client namespace; the client connects. Then sesame's own encoder knocks from
// another address of the client.
func TestIntegrationGnuPGKnockConnect(t *testing.T) {
	nstest.Require(t, "gpg", "gpgconf", "fwknop", "nft")
	t.Parallel()
	h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: gpgtest.RSA, UID: "server <srv@test>", Passphrase: "server-pass"},
		gpgtest.Spec{Kind: gpgtest.RSA, UID: "client <cli@test>"})
	srvHome, cliHome := h[0], h[1]
	srvHome.Import(t, cliHome)
	srvHome.LSign(t, cliHome)
	cliHome.Import(t, srvHome)
	hmac := randKey(t)

	srv, cli := nstest.Pair(t)
	sshAddr := net.JoinHostPort(nstest.SrvIP4, "22")
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	access := fmt.Sprintf("SOURCE 10.99.0.0/24\nOPEN_PORTS tcp/22\nREQUIRE_SOURCE_ADDRESS Y\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\n"+
		"GPG_DECRYPT_PW %s\nGPG_REMOTE_ID %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 30\n",
		srvHome.Dir, srvHome.ID, srvHome.Passphrase, cliHome.ID, base64.StdEncoding.EncodeToString(hmac))
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: access, StartTimeout: 30 * time.Second})
	sesametest.WaitDial(t, cli, sshAddr, sesametest.Timeout, 2*time.Second)

	out := fwknoptest.Knock(t, cli, "-A", "tcp/22", "-a", nstest.CliIP4, "-D", nstest.SrvIP4, "--gpg-encryption",
		"--gpg-recipient-key", srvHome.ID, "--gpg-signer-key", cliHome.ID, "--gpg-home-dir", cliHome.Dir,
		"--gpg-no-signing-pw", "--use-hmac", "--key-base64-hmac", base64.StdEncoding.EncodeToString(hmac))
	if !strings.Contains(out, "Encryption Type: 2 (GPG)") {
		t.Fatalf("fwknop did not build a GnuPG packet:\n%s", out)
	}
	sesametest.WaitDial(t, cli, sshAddr, sesametest.Open, 5*time.Second)
	d.WaitLog(t, 1, 5*time.Second, "access granted", "src="+nstest.CliIP4)

	// sesame's encoder, from a second client address.
	cli.Run(t, "ip", "addr", "add", "10.99.0.3/24", "dev", cli.Ifc)
	wire := sesameClientMsg(t, cliHome, srvHome.Fpr, hmac, "10.99.0.3,tcp/22")
	sendFrom(t, cli, "10.99.0.3", nstest.SrvIP4, wire)
	d.WaitLog(t, 1, 5*time.Second, "access granted", "src=10.99.0.3")
}

// TestIntegrationGnuPGECC: Ed25519/Curve25519 keys made by gpg. sesame's encoder writes the
// session key packet with a 2-byte old-format length, so the packet starts with the "hQ" the
// server restores: sesame's server and Debian's fwknopd both accept it. Debian's fwknop client
// strips the first two characters of an ECC message, which are not "hQ" (fwknop issue #247),
// so neither server can read what it sends.
func TestIntegrationGnuPGECC(t *testing.T) {
	nstest.Require(t, "gpg", "gpgconf", "fwknop", "fwknopd", "iptables")
	t.Parallel()
	h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: gpgtest.ECC, UID: "server ecc <srv@test>"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "client ecc <cli@test>"})
	srvHome, cliHome := h[0], h[1]
	srvHome.Import(t, cliHome)
	srvHome.LSign(t, cliHome)
	cliHome.Import(t, srvHome)
	hmac := randKey(t)
	specs := []*stanzaSpec{
		{name: "ecc hmac", srv: srvHome, list: "id", ids: []*gpgtest.Home{cliHome}, hmac: hmac},
		{name: "ecc", srv: srvHome, list: "fpr", ids: []*gpgtest.Home{cliHome}},
	}
	j := newJudges(t, accessConf(specs))
	for _, s := range specs {
		wire := sesameClient(t, cliHome, true, srvHome.Fpr, s.hmac)
		fw, line := j.fwknopd(t, s.src, wire)
		res := j.sesameVerdict(s.src, wire)
		t.Logf("%s / sesame encoder: fwknopd accepted=%v, sesame %v", s.name, fw, res.Reason)
		if res.Reason != server.Granted {
			t.Errorf("%s: sesame %v (%v), want granted", s.name, res.Reason, res.Err)
		}
		if !fw {
			t.Errorf("%s: fwknopd refused sesame's ECC packet: %s", s.name, line)
		}
		wire = fwknopClient(t, cliHome, cliHome, srvHome.ID, s.hmac)
		fw, _ = j.fwknopd(t, s.src, wire)
		res = j.sesameVerdict(s.src, wire)
		t.Logf("%s / fwknop -g: fwknopd accepted=%v, sesame %v", s.name, fw, res.Reason)
		if fw || res.Reason == server.Granted {
			t.Errorf("%s: fwknop's ECC packet accepted (fwknopd %v, sesame %v): has fwknop #247 been fixed?", s.name, fw, res.Reason)
		}
	}
}
