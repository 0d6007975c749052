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
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// knockGPG runs "sesame knock -g" (the sesame binary) in ns to the server address from
// the client home cli, for recipient, signed by cli's key, its passphrase on --stdin, with an
// HMAC key, and returns its output.
func knockGPG(t *testing.T, ns *nstest.NS, cli *gpgtest.Home, recipient, allow string, hmac []byte) string {
	t.Helper()
	args := []string{"HOME=" + t.TempDir(), nstest.Binary(t), "knock", "--no-rc-file", "--no-save-args", "-v",
		"-D", nstest.SrvIP4, "-A", "tcp/22", "-a", allow, "-g", "--gpg-recipient-key", recipient,
		"--gpg-signer-key", cli.ID, "--gpg-home-dir", cli.Dir, "--use-hmac", "--key-base64-hmac", base64.StdEncoding.EncodeToString(hmac)}
	if cli.Passphrase != "" {
		args = append(args, "--stdin")
	} else {
		args = append(args, "--gpg-no-signing-pw")
	}
	cmd := ns.Command("env", args...)
	cmd.Stdin = strings.NewReader(cli.Passphrase + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesame knock -g: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Encryption Type: 2 (GPG)") {
		t.Fatalf("sesame knock -g built no GnuPG packet:\n%s", out)
	}
	return string(out)
}

// TestIntegrationSesameKnockGnuPGToFwknopd: "sesame knock -g" from a client namespace makes
// Debian's fwknopd (UDP server mode) open tcp/22 for the knock's allow-IP, with RSA keys (a
// passphrase-protected client key, the passphrase on --stdin) and with DSA+ElGamal keys (no
// passphrase, --gpg-no-signing-pw); each stanza requires the client's signature
// (GPG_REMOTE_ID) and an HMAC.
func TestIntegrationSesameKnockGnuPGToFwknopd(t *testing.T) {
	nstest.Require(t, "gpg", "gpgconf", "fwknopd", "iptables")
	t.Parallel()
	for _, kind := range []gpgtest.Kind{gpgtest.RSA, gpgtest.DSA} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			pass := ""
			if kind == gpgtest.RSA {
				pass = "client-pass"
			}
			h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: kind, UID: "server <srv@test>"},
				gpgtest.Spec{Kind: kind, UID: "client <cli@test>", Passphrase: pass})
			srvHome, cliHome := h[0], h[1]
			srvHome.Import(t, cliHome)
			srvHome.LSign(t, cliHome)
			cliHome.Import(t, srvHome)
			hmac := randKey(t)
			srvNS, cliNS := nstest.Pair(t)
			srv := fwknoptest.StartServer(t, srvNS, fwknoptest.ServerOptions{StartTimeout: 30 * time.Second,
				Access: fmt.Sprintf("SOURCE ANY\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\nGPG_ALLOW_NO_PW Y\nGPG_REMOTE_ID %s\n"+
					"HMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 60\n", srvHome.Dir, srvHome.ID, cliHome.ID, base64.StdEncoding.EncodeToString(hmac))})
			knockGPG(t, cliNS, cliHome, srvHome.ID, "10.97.1.2", hmac)
			srv.WaitLog(t, "for 10.97.1.2 -> ", 1, 20*time.Second)
			if in := strings.Join(srv.InputRules(t), "\n"); !strings.Contains(in, "-s 10.97.1.2/32 -p tcp -m tcp --dport 22") {
				t.Errorf("FWKNOP_INPUT has no rule for 10.97.1.2:\n%s", in)
			}
		})
	}
}

// TestIntegrationSesameKnockGnuPGECC: Ed25519/Curve25519 keys, which fwknop's client cannot
// carry (fwknop #247): "sesame knock -g" makes sesame server (which guards tcp/22) open the
// port, and the client connects.
func TestIntegrationSesameKnockGnuPGECC(t *testing.T) {
	nstest.Require(t, "gpg", "gpgconf", "nft")
	t.Parallel()
	h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: gpgtest.ECC, UID: "server ecc <srv@test>"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "client ecc <cli@test>", Passphrase: "client-pass"})
	srvHome, cliHome := h[0], h[1]
	srvHome.Import(t, cliHome)
	srvHome.LSign(t, cliHome)
	cliHome.Import(t, srvHome)
	hmac := randKey(t)
	srv, cli := nstest.Pair(t)
	sshAddr := net.JoinHostPort(nstest.SrvIP4, "22")
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	access := fmt.Sprintf("SOURCE ANY\nOPEN_PORTS tcp/22\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\nGPG_ALLOW_NO_PW Y\n"+
		"GPG_FINGERPRINT_ID %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 30\n",
		srvHome.Dir, srvHome.ID, cliHome.Fpr, base64.StdEncoding.EncodeToString(hmac))
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: access, StartTimeout: 30 * time.Second})
	sesametest.WaitDial(t, cli, sshAddr, sesametest.Timeout, 2*time.Second)
	knockGPG(t, cli, cliHome, srvHome.Fpr, nstest.CliIP4, hmac)
	sesametest.WaitDial(t, cli, sshAddr, sesametest.Open, 5*time.Second)
	d.WaitLog(t, 1, 5*time.Second, "access granted", "src="+nstest.CliIP4)
}
