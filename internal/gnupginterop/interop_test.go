package gnupginterop

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/internal/gpgtest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/server"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// stanzaSpec is one access.conf stanza of the matrix, matched by its own loopback source
// address so that one fwknopd and one sesame pipeline hold the whole matrix.
type stanzaSpec struct {
	name  string
	srv   *gpgtest.Home // nil: a Rijndael-only stanza
	hmac  []byte        // nil: no HMAC key
	list  string        // "id" (GPG_REMOTE_ID), "fpr" (GPG_FINGERPRINT_ID)
	ids   []*gpgtest.Home
	extra string // more lines (GPG_IGNORE_SIG_VERIFY_ERROR Y, KEY ...)
	src   string // filled by accessConf
}

func accessConf(specs []*stanzaSpec) string {
	var b strings.Builder
	for i, s := range specs {
		s.src = fmt.Sprintf("127.0.0.%d", 10+i)
		fmt.Fprintf(&b, "SOURCE %s/32\nFW_ACCESS_TIMEOUT 30\n", s.src)
		if s.srv != nil {
			fmt.Fprintf(&b, "GPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\n", s.srv.Dir, s.srv.ID)
			if s.srv.Passphrase != "" {
				fmt.Fprintf(&b, "GPG_DECRYPT_PW %s\n", s.srv.Passphrase)
			} else {
				b.WriteString("GPG_ALLOW_NO_PW Y\n")
			}
			var ids []string
			for _, h := range s.ids {
				if s.list == "fpr" {
					ids = append(ids, h.Fpr)
				} else {
					ids = append(ids, h.ID)
				}
			}
			if s.list == "fpr" {
				fmt.Fprintf(&b, "GPG_FINGERPRINT_ID %s\n", strings.Join(ids, ","))
			} else {
				fmt.Fprintf(&b, "GPG_REMOTE_ID %s\n", strings.Join(ids, ","))
			}
		}
		if s.hmac != nil {
			fmt.Fprintf(&b, "HMAC_KEY_BASE64 %s\n", base64.StdEncoding.EncodeToString(s.hmac))
		}
		b.WriteString(s.extra)
		b.WriteString("\n")
	}
	return b.String()
}

// judges runs each packet through the real fwknopd (test mode) and through sesame's server
// pipeline (test mode, the real gpgkeys loader), both with the same access.conf.
type judges struct {
	fw     *fwknoptest.Server
	sesame *server.Server
}

func newJudges(t *testing.T, access string) *judges {
	t.Helper()
	ns := nstest.New(t)
	fw := fwknoptest.StartServer(t, ns, fwknoptest.ServerOptions{Access: access, TestMode: true, StartTimeout: 20 * time.Second})
	st, _, err := fwconf.ParseAccess("access.conf", []byte(access), fwconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := server.Policy{PacketAging: true, MaxPacketAge: 120 * time.Second, TestMode: true}
	for _, s := range st {
		p.Stanzas = append(p.Stanzas, *s)
	}
	s, err := server.New(server.Config{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return &judges{fw: fw, sesame: s}
}

// fwknopd's verdict lines (one per packet: every stanza has its own source).
var (
	acceptLine  = "--test mode enabled, skipping firewall manipulation"
	refuseLines = []string{"Error creating fko context", "is not in the GPG_REMOTE_ID list", "is not in the GPG_FINGERPRINT_ID list",
		"No stanza encryption mode match", "preprocess_spa_data() returned error", "SPA data time difference"}
)

// fwknopd sends wire from src to fwknopd and returns whether it accepted it, with its log line.
func (j *judges) fwknopd(t *testing.T, src, wire string) (bool, string) {
	t.Helper()
	before := len(j.fw.Log())
	sendFrom(t, j.fw.NS, src, "127.0.0.1", wire)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		log := j.fw.Log()
		if len(log) > before {
			for _, l := range strings.Split(log[before:], "\n") {
				if strings.Contains(l, acceptLine) {
					return true, l
				}
				for _, r := range refuseLines {
					if strings.Contains(l, r) {
						return false, l
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fwknopd gave no verdict for a packet from %s; log tail:\n%s", src, tailLines(j.fw.Log(), 30))
	return false, ""
}

func (j *judges) sesameVerdict(src, wire string) server.Result {
	return j.sesame.Handle(context.Background(), capture.Packet{Src: netip.AddrPortFrom(netip.MustParseAddr(src), 40000),
		Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 62201), Proto: 17, Payload: []byte(wire)})
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// fwknopClient builds a GnuPG packet with the real fwknop client, signed by signer (nil:
// unsigned), for recipient, from the client home.
func fwknopClient(t *testing.T, home, signer *gpgtest.Home, recipient string, hmac []byte) string {
	t.Helper()
	args := []string{"-A", "tcp/22", "-a", "127.0.0.1", "--gpg-encryption", "--gpg-recipient-key", recipient,
		"--gpg-home-dir", home.Dir}
	if signer != nil {
		args = append(args, "--gpg-signer-key", signer.ID, "--gpg-no-signing-pw")
	}
	if hmac != nil {
		args = append(args, "--use-hmac", "--key-base64-hmac", base64.StdEncoding.EncodeToString(hmac))
	}
	return runFwknop(t, args...)
}

// runFwknop runs the real client in -T mode and returns the packet it saved. In GnuPG mode
// with an HMAC key, fwknop -T then tries to decrypt its own packet with the client's keyring,
// which has no secret key for the server, and exits 1 after saving the packet: that failure
// is expected (so is an HMAC failure of that self-check with ECC keys, fwknop #247).
func runFwknop(t *testing.T, args ...string) string {
	t.Helper()
	nstest.Require(t, "fwknop")
	home := t.TempDir()
	pkt := filepath.Join(home, "spa.pkt")
	full := append(append([]string{}, fwknoptest.ClientFlags...), "-B", pkt, "-D", "127.0.0.1")
	cmd := exec.Command("fwknop", append(full, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "fko_decrypt_spa_data: Error 132") &&
		!strings.Contains(string(out), "FKO_ERROR_INVALID_DATA_HMAC_COMPAREFAIL") { // ECC keys: fwknop #247
		t.Fatalf("fwknop %q: %v\n%s", args, err, out)
	}
	wire, rerr := os.ReadFile(pkt)
	if rerr != nil {
		t.Fatalf("fwknop %q: no packet (%v): %v\n%s", args, rerr, err, out)
	}
	return strings.TrimSpace(string(wire))
}

// sesameClient builds a GnuPG packet with sesame's encoder, signed (or not) by the client
// home's key, for the recipient fingerprint found in the client home's keyring.
func sesameClient(t *testing.T, home *gpgtest.Home, signed bool, recipient string, hmac []byte) string {
	t.Helper()
	return sesameEncode(t, home, signed, recipient, hmac, "127.0.0.1,tcp/22")
}

// sesameClientMsg is sesameClient, signed, with the access message msg.
func sesameClientMsg(t *testing.T, home *gpgtest.Home, recipient string, hmac []byte, msg string) string {
	t.Helper()
	return sesameEncode(t, home, true, recipient, hmac, msg)
}

func sesameEncode(t *testing.T, home *gpgtest.Home, signed bool, recipient string, hmac []byte, msg string) string {
	t.Helper()
	clientKeysMu.Lock()
	k := clientKeys[home]
	clientKeysMu.Unlock()
	if k == nil {
		k = home.Keys(t)
		clientKeysMu.Lock()
		clientKeys[home] = k
		clientKeysMu.Unlock()
	}
	to := gpgtest.Keyring(k.Public).Public(recipient)
	if to == nil {
		t.Fatalf("no key %s in %s", recipient, home.Dir)
	}
	var signer *openpgp.Entity
	if signed {
		signer = k.Secret[0]
	}
	m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: msg}
	w, err := gnupg.Encode(&m, spa.Keys{HMACKey: hmac}, to, signer, rand.Reader, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// sendFrom sends wire as one UDP datagram from src (an address of ns) to dst:62201.
func sendFrom(t *testing.T, ns *nstest.NS, src, dst, wire string) {
	t.Helper()
	err := ns.Do(t, func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(dst), Port: fwknoptest.DefaultPort})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(wire))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// clientKeys caches the keys of client homes (gpgkeys.Load runs gpg).
var (
	clientKeys   = map[*gpgtest.Home]*gpgkeys.Keys{}
	clientKeysMu sync.Mutex
)

func randKey(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIntegrationGnuPGInterop is the interop matrix against the real binaries: RSA and
// DSA+ElGamal keys, with and without HMAC, passphrase and no-passphrase server keys, signers
// accepted by GPG_REMOTE_ID and by GPG_FINGERPRINT_ID, packets from fwknop -g and from sesame's
// encoder, each judged by fwknopd and by sesame; then the refusals, packet for packet.
func TestIntegrationGnuPGInterop(t *testing.T) {
	nstest.Require(t, "gpg", "gpgconf", "fwknop", "fwknopd", "iptables")
	t.Parallel()
	// Keys: a server home per kind, with and without passphrase; an RSA client, and a
	// stranger. The DSA server's key also signs as the DSA client (ElGamal-encrypted to itself,
	// DSA-signed: its own key is valid). Each server lsigns the client of its kind and the
	// stranger; the DSA key is in the RSA servers' keyrings but not lsigned there (not valid),
	// and the other keys are unknown to them.
	h := gpgtest.NewHomes(t,
		gpgtest.Spec{Kind: gpgtest.DSA, UID: "server dsa <srv-dsa@test>"},
		gpgtest.Spec{Kind: gpgtest.DSA, UID: "server dsa pw <srv-dsa-pw@test>", Passphrase: "server-pass"},
		gpgtest.Spec{Kind: gpgtest.RSA, UID: "server rsa <srv-rsa@test>"},
		gpgtest.Spec{Kind: gpgtest.RSA, UID: "server rsa pw <srv-rsa-pw@test>", Passphrase: "server-pass"},
		gpgtest.Spec{Kind: gpgtest.RSA, UID: "client rsa <cli-rsa@test>"},
		gpgtest.Spec{Kind: gpgtest.RSA, UID: "stranger <stranger@test>"})
	srvs := map[string]*gpgtest.Home{"dsa": h[0], "dsa-pw": h[1], "rsa": h[2], "rsa-pw": h[3]}
	clis := map[gpgtest.Kind]*gpgtest.Home{gpgtest.DSA: h[0], gpgtest.RSA: h[4]}
	stranger := h[5]
	untrusted := clis[gpgtest.DSA] // in the RSA servers' keyrings, not lsigned there
	unknown := srvs["dsa-pw"]      // not in the RSA servers' keyrings
	for name, s := range srvs {
		s.PinentryLoopback(t) // fwknopd needs it for GPG_DECRYPT_PW; sesame does not care
		if name == "dsa" {
			s.Import(t, clis[gpgtest.RSA], stranger)
		} else {
			s.Import(t, clis[gpgtest.RSA], clis[gpgtest.DSA], stranger)
			s.LSign(t, clis[s.Kind])
		}
		s.LSign(t, stranger)
	}
	for _, c := range []*gpgtest.Home{clis[gpgtest.RSA], clis[gpgtest.DSA], stranger} {
		c.Import(t, srvs["rsa"], srvs["rsa-pw"], srvs["dsa-pw"])
	}
	clis[gpgtest.RSA].Import(t, srvs["dsa"])
	stranger.Import(t, srvs["dsa"])
	unknown.Import(t, srvs["rsa"])
	hmacKey := randKey(t)

	// The accept matrix: kind x server passphrase x HMAC x signer list (all four HMAC/list
	// combinations on the keys without passphrase, two on those with one).
	var specs []*stanzaSpec
	for _, name := range []string{"rsa", "rsa-pw", "dsa", "dsa-pw"} {
		kind := srvs[name].Kind
		variants := []struct {
			hmac bool
			list string
		}{{true, "id"}, {false, "fpr"}, {false, "id"}, {true, "fpr"}}
		if srvs[name].Passphrase != "" {
			variants = variants[:2] // pairwise: each passphrase key with HMAC+ID and no HMAC+fingerprint
		}
		for _, v := range variants {
			s := &stanzaSpec{name: fmt.Sprintf("%s hmac=%v %s", name, v.hmac, v.list), srv: srvs[name], list: v.list,
				ids: []*gpgtest.Home{clis[kind]}}
			if v.hmac {
				s.hmac = hmacKey
			}
			specs = append(specs, s)
		}
	}
	accepts := len(specs)
	// Refusals and policy cases, on RSA without passphrase.
	rsa, cli := srvs["rsa"], clis[gpgtest.RSA]
	ref := func(name, extra string, ids ...*gpgtest.Home) *stanzaSpec {
		if ids == nil {
			ids = []*gpgtest.Home{cli}
		}
		s := &stanzaSpec{name: name, srv: rsa, list: "id", ids: ids, extra: extra}
		specs = append(specs, s)
		return s
	}
	sUnsigned := ref("unsigned", "")
	sWrongSigner := ref("wrong signer", "")
	sTampered := ref("tampered", "")
	sWrongRecipient := ref("wrong recipient", "")
	sTruncated := ref("truncated", "")
	sUntrusted := ref("signer not lsigned", "", untrusted)
	sUntrustedIgnore := ref("signer not lsigned, GPG_IGNORE_SIG_VERIFY_ERROR Y", "GPG_IGNORE_SIG_VERIFY_ERROR Y\n", untrusted)
	sUnknownIgnore := ref("signer not in keyring, GPG_IGNORE_SIG_VERIFY_ERROR Y", "GPG_IGNORE_SIG_VERIFY_ERROR Y\n", unknown)
	sHMACForged := &stanzaSpec{name: "HMAC forged", srv: rsa, list: "id", ids: []*gpgtest.Home{cli}, hmac: hmacKey}
	specs = append(specs, sHMACForged)
	sRijndaelOnly := &stanzaSpec{name: "GnuPG packet to a Rijndael-only stanza", extra: "KEY_BASE64 " + base64.StdEncoding.EncodeToString(randKey(t)) + "\n"}
	specs = append(specs, sRijndaelOnly)
	sGnuPGOnly := ref("Rijndael packet to a GnuPG-only stanza", "")
	j := newJudges(t, accessConf(specs))

	type row struct {
		stanza, client string
		fwknopd        bool
		sesame         server.Reason
	}
	var rows []row
	check := func(s *stanzaSpec, client, wire string, wantAccept bool, wantReason server.Reason) {
		t.Helper()
		fw, line := j.fwknopd(t, s.src, wire)
		res := j.sesameVerdict(s.src, wire)
		rows = append(rows, row{s.name, client, fw, res.Reason})
		if fw != wantAccept {
			t.Errorf("%s / %s: fwknopd accepted=%v, want %v: %s", s.name, client, fw, wantAccept, line)
		}
		if res.Reason != wantReason {
			t.Errorf("%s / %s: sesame %v (%v), want %v", s.name, client, res.Reason, res.Err, wantReason)
		}
	}

	for _, s := range specs[:accepts] {
		c := clis[s.srv.Kind]
		check(s, "fwknop -g", fwknopClient(t, c, c, s.srv.ID, s.hmac), true, server.Granted)
		check(s, "sesame encoder", sesameClient(t, c, true, s.srv.Fpr, s.hmac), true, server.Granted)
	}

	good := fwknopClient(t, cli, cli, rsa.ID, nil)
	check(sUnsigned, "fwknop -g", fwknopClient(t, cli, nil, rsa.ID, nil), false, server.NotSigned)
	check(sUnsigned, "sesame encoder", sesameClient(t, cli, false, rsa.Fpr, nil), false, server.NotSigned)
	check(sWrongSigner, "fwknop -g", fwknopClient(t, stranger, stranger, rsa.ID, nil), false, server.SignerNotAllowed)
	tampered := []byte(good)
	i := len(tampered) / 2
	tampered[i] = map[bool]byte{true: 'B', false: 'A'}[tampered[i] == 'A']
	check(sTampered, "fwknop -g", string(tampered), false, server.DecryptFailed)
	check(sWrongRecipient, "fwknop -g", fwknopClient(t, cli, cli, srvs["rsa-pw"].ID, nil), false, server.DecryptFailed)
	check(sTruncated, "fwknop -g", good[:len(good)-40], false, server.DecryptFailed)
	check(sUntrusted, "fwknop -g", fwknopClient(t, untrusted, untrusted, rsa.ID, nil), false, server.SignerNotValid)
	check(sUntrustedIgnore, "fwknop -g", fwknopClient(t, untrusted, untrusted, rsa.ID, nil), true, server.Granted)
	check(sHMACForged, "fwknop -g", fwknopClient(t, cli, cli, rsa.ID, randKey(t)), false, server.BadHMAC)
	check(sRijndaelOnly, "fwknop -g", good, false, server.WrongMode)
	rijndael := fwknoptest.Client(t, "-A", "tcp/22", "-a", "127.0.0.1", "--key-rijndael", "fwknoptest").Wire
	check(sGnuPGOnly, "fwknop (Rijndael)", rijndael, false, server.WrongMode)

	// The one deliberate difference: with GPG_IGNORE_SIG_VERIFY_ERROR Y fwknopd accepts a
	// signature it cannot verify (the key is not in its keyring) and matches the ID the
	// signature claims; sesame refuses it, since anyone who can encrypt to the server could
	// claim any listed ID.
	unknownWire := fwknopClient(t, unknown, unknown, rsa.ID, nil)
	fw, line := j.fwknopd(t, sUnknownIgnore.src, unknownWire)
	res := j.sesameVerdict(sUnknownIgnore.src, unknownWire)
	rows = append(rows, row{sUnknownIgnore.name, "fwknop -g", fw, res.Reason})
	if !fw || res.Reason != server.BadSignature {
		t.Errorf("unknown signer with GPG_IGNORE_SIG_VERIFY_ERROR: fwknopd accepted=%v (%s), sesame %v; want fwknopd true, sesame %v",
			fw, line, res.Reason, server.BadSignature)
	}

	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-55s %-18s fwknopd=%-6v sesame=%v\n", r.stanza, r.client, map[bool]string{true: "accept", false: "refuse"}[r.fwknopd], r.sesame)
	}
	t.Logf("interop matrix (%d packets):\n%s", len(rows), b.String())
	if os.Getenv("SESAME_GNUPG_MATRIX") != "" {
		os.WriteFile(os.Getenv("SESAME_GNUPG_MATRIX"), []byte(b.String()), 0o644)
	}
}
