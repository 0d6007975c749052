package md5grant

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// user is one SPA user: a client namespace with its own stanza keys.
type user struct {
	name   string
	ns     *nstest.NS
	ip     string // the client's address
	server string // the server's address on the client's link
	keys   spa.Keys
	rc     string // the user's rc file
}

// md5Daemon starts "sesame server" in ns with the MD5 listener on :2222 in front of an echo
// server on 127.0.0.1:7007, and returns a function reading its log.
func md5Daemon(t testing.TB, ns *nstest.NS, serverExtra, access string) func() string {
	t.Helper()
	sesametest.Listen(t, ns, "127.0.0.1:7007", sesametest.Echo)
	srv := sesametest.StartServer(t, ns, sesametest.ServerOptions{Access: access,
		Config: "ENABLE_UDP_SERVER Y\nSESAME_MD5_LISTEN [::]:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:7007\n" + serverExtra})
	if !strings.Contains(srv.Log(), "tcp-md5 listener started") {
		t.Fatalf("no tcp-md5 listener:\n%s", srv.Log())
	}
	return srv.Log
}

// rcFor writes u's ~/.fwknoprc stanza [u.name].
func rcFor(t testing.TB, u *user) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString
	rc := fmt.Sprintf("[%s]\nSPA_SERVER %s\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nUSE_HMAC Y\nALLOW_IP source\nACCESS tcp/2222\n",
		u.name, u.server, b64(u.keys.Key), b64(u.keys.HMACKey))
	u.rc = filepath.Join(t.TempDir(), "fwknoprc")
	if err := os.WriteFile(u.rc, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// connectKnock runs "sesame connect --knock" as u and checks that a line is echoed.
func connectKnock(t testing.TB, u *user) time.Duration {
	t.Helper()
	cmd := u.ns.Command(nstest.Binary(t), "connect", "--knock="+u.name, "--rc-file", u.rc, "--timeout", "5s", u.server, "2222")
	line := "hello from " + u.name + "\n"
	cmd.Stdin = strings.NewReader(line)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil || out.String() != line {
		t.Fatalf("%s: sesame connect --knock: %v, out %q, stderr %s", u.name, err, out.String(), errb.String())
	}
	return time.Since(start)
}

// md5Dial tries one connection from ns to addr, signed with key (zero: unsigned), and
// reports whether a line came back.
func md5Dial(t *testing.T, ns *nstest.NS, addr string, key tcpmd5.Key) bool {
	t.Helper()
	ok := false
	err := ns.Do(t, func() error {
		c, err := dialKey(net.Dialer{Timeout: 400 * time.Millisecond}, addr, key)
		if err != nil {
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.ECONNREFUSED) {
				return nil
			}
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "x\n")
		buf := make([]byte, 2)
		_, err = io.ReadFull(c, buf)
		ok = err == nil && string(buf) == "x\n"
		return nil
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return ok
}

// TestIntegrationPerUserMD5 runs sesame server with SESAME_MD5_LISTEN in a namespace and two
// users, each in their own namespace with their own stanza: each connects after knocking
// with "sesame connect --knock"; nobody else does, not even from a granted address without
// that stanza's derived key; and the key stops working when the grant expires. The guarded
// variant also closes the port in the firewall (SESAME_GUARD_PORTS); the unguarded one
// shows the TCP-MD5 layer alone.
func TestIntegrationPerUserMD5(t *testing.T) {
	for _, guard := range []bool{false, true} {
		t.Run(map[bool]string{false: "md5-only", true: "guarded"}[guard], func(t *testing.T) {
			nstest.Require(t, "nft")
			t.Parallel()
			perUser(t, guard)
		})
	}
}

func perUser(t *testing.T, guard bool) {
	srv := nstest.New(t)
	alice := &user{name: "alice", ns: nstest.New(t), ip: "10.97.1.2", server: "10.97.1.1",
		keys: spa.Keys{Key: []byte("alice-rijndael-key"), HMACKey: []byte("alice-hmac-key-0123456789")}}
	bob := &user{name: "bob", ns: nstest.New(t), ip: "fd97:2::2", server: "fd97:2::1",
		keys: spa.Keys{Key: []byte("bob-rijndael-key"), HMACKey: []byte("bob-hmac-key-0123456789")}}
	nstest.Connect(t, srv, alice.ns, []string{"10.97.1.1/24"}, []string{"10.97.1.2/24"})
	nstest.Connect(t, srv, bob.ns, []string{"fd97:2::1/64"}, []string{"fd97:2::2/64"})
	nbr := nstest.New(t)
	nstest.Connect(t, srv, nbr, []string{"10.97.3.1/24", "fd97:3::1/64"}, []string{"10.97.3.2/24", "fd97:3::2/64"})

	stanza := func(k spa.Keys) string {
		return fmt.Sprintf("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 3\nOPEN_PORTS tcp/2222\nSESAME_MD5 Y\n\n",
			base64.StdEncoding.EncodeToString(k.Key), base64.StdEncoding.EncodeToString(k.HMACKey))
	}
	extra := ""
	if guard {
		extra = "SESAME_GUARD_PORTS tcp/2222\n"
	}
	log := md5Daemon(t, srv, extra, stanza(alice.keys)+stanza(bob.keys))
	for _, u := range []*user{alice, bob} {
		rcFor(t, u)
	}
	keyA, _ := Derive(alice.keys)
	keyB, _ := Derive(bob.keys)
	aliceAddr := net.JoinHostPort(alice.server, "2222")
	bobAddr := net.JoinHostPort(bob.server, "2222")

	// Before any knock nobody connects, with or without the right key.
	if md5Dial(t, alice.ns, aliceAddr, keyA) || md5Dial(t, alice.ns, aliceAddr, tcpmd5.Key{}) {
		t.Fatal("alice connected before knocking")
	}

	took := connectKnock(t, alice)
	t.Logf("alice: knock + signed connection in %v", took)
	granted := time.Now()
	if !strings.Contains(log(), "md5 key granted") {
		t.Errorf("no md5 grant in the log:\n%s", log())
	}
	if !md5Dial(t, alice.ns, aliceAddr, keyA) {
		t.Error("alice's derived key does not connect during her grant")
	}
	for _, tc := range []struct {
		name string
		ns   *nstest.NS
		addr string
		key  tcpmd5.Key
	}{
		{"alice's address, unsigned", alice.ns, aliceAddr, tcpmd5.Key{}},
		{"alice's address, bob's key", alice.ns, aliceAddr, keyB},
		{"neighbour, alice's key", nbr, "10.97.3.1:2222", keyA},
		{"neighbour, unsigned", nbr, "10.97.3.1:2222", tcpmd5.Key{}},
		{"neighbour over IPv6, alice's key", nbr, "[fd97:3::1]:2222", keyA},
		{"bob before knocking, his key", bob.ns, bobAddr, keyB},
	} {
		if md5Dial(t, tc.ns, tc.addr, tc.key) {
			t.Errorf("%s: connected", tc.name)
		}
	}

	took = connectKnock(t, bob)
	t.Logf("bob (IPv6): knock + signed connection in %v", took)
	if !md5Dial(t, bob.ns, bobAddr, keyB) || md5Dial(t, bob.ns, bobAddr, keyA) || md5Dial(t, bob.ns, bobAddr, tcpmd5.Key{}) {
		t.Error("bob: only his own derived key must connect")
	}

	// FW_ACCESS_TIMEOUT is 3 s: after it, alice's key no longer connects.
	time.Sleep(time.Until(granted.Add(3*time.Second + 500*time.Millisecond)))
	if md5Dial(t, alice.ns, aliceAddr, keyA) {
		t.Errorf("alice's key still connects after her grant expired\n%s", log())
	}
	if !strings.Contains(log(), "md5 grants expired") {
		t.Errorf("no expiry in the log:\n%s", log())
	}
}
