package server

import (
	"crypto/rand"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

// Test keys shared by the integration tests.
const (
	testKey  = "fwknoptest"
	testHMAC = "hmactest"
)

var testKeys = spa.Keys{Key: []byte(testKey), HMACKey: []byte(testHMAC)}

// fwknop runs Debian's real client in ns with test keys and the given extra arguments.
func fwknop(t *testing.T, ns *nstest.NS, args ...string) string {
	t.Helper()
	home := t.TempDir()
	all := append([]string{"--use-hmac", "--key-rijndael", testKey, "--key-hmac", testHMAC,
		"--no-rc-file", "--no-save-args"}, args...)
	cmd := ns.Command("fwknop", all...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fwknop %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// encode builds a packet with sesame's own encoder.
func encode(t *testing.T, m spa.Message, k spa.Keys) []byte {
	t.Helper()
	if m.Username == "" {
		m.Username = "root"
	}
	if m.Timestamp == 0 {
		m.Timestamp = time.Now().Unix()
	}
	if m.Type == 0 && m.ClientTimeout == 0 && !strings.Contains(m.Message, "echo") {
		m.Type = spa.AccessMsg
	}
	w, err := spa.Encode(&m, k, rand.Reader)
	if err != nil {
		t.Fatalf("encode %+v: %v", m, err)
	}
	return []byte(w)
}

// sendUDP sends each payload as one datagram from ns (bound to laddr if not "") to raddr.
func sendUDP(t *testing.T, ns *nstest.NS, laddr, raddr string, payloads ...[]byte) {
	t.Helper()
	err := ns.Do(t, func() error {
		var la *net.UDPAddr
		if laddr != "" {
			var err error
			if la, err = net.ResolveUDPAddr("udp", laddr); err != nil {
				return err
			}
		}
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", la, ra)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range payloads {
			if _, err := c.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send udp %s -> %s: %v", laddr, raddr, err)
	}
}

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// garbage returns n random payloads of base64 characters (they pass the cheap wire checks, so
// each costs the server an HMAC).
func garbage(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, size)
		rand.Read(b)
		for j := range b {
			b[j] = b64chars[b[j]&63]
		}
		out[i] = b
	}
	return out
}

// flood sends garbage from ns to raddr at rate packets/s until stop is closed and returns the
// count sent.
func flood(t *testing.T, ns *nstest.NS, raddr string, rate int, stop <-chan struct{}) int {
	pkts := garbage(1024, 204)
	n := 0
	err := ns.Do(t, func() error {
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", nil, ra)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			for i := range 50 {
				if _, err := c.Write(pkts[(n+i)%len(pkts)]); err == nil { // errors do not stop a flood
					n++
				}
			}
			if w := time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(rate))); w > 0 {
				time.Sleep(w)
			}
		}
	})
	if err != nil {
		t.Errorf("flood: %v", err)
	}
	return n
}
