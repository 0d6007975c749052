package tcpmd5

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

const dialTimeout = 400 * time.Millisecond

// inNS runs fn inside ns on a locked thread; sockets it opens stay in ns.
func inNS(t *testing.T, ns *nstest.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(t, fn); err != nil {
		t.Fatal(err)
	}
}

// listenEcho starts an MD5 listener in ns that echoes every connection.
func listenEcho(t *testing.T, ns *nstest.NS, network, addr string, rules []KeyRule) *Listener {
	t.Helper()
	var l *Listener
	inNS(t, ns, func() (err error) {
		l, err = Listen(context.Background(), network, addr, rules)
		return err
	})
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return l
}

// try dials addr from ns (with key, or unsigned if key is zero) and checks the echo.
func try(t *testing.T, ns *nstest.NS, addr string, key Key, local string) error {
	t.Helper()
	var conn net.Conn
	err := ns.Do(t, func() (err error) {
		nd := net.Dialer{Timeout: dialTimeout}
		if local != "" {
			nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		if key.IsZero() {
			conn, err = nd.Dial("tcp", addr)
		} else {
			d := &Dialer{Dialer: nd, Key: key}
			conn, err = d.DialContext(context.Background(), "tcp", addr)
		}
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	msg := fmt.Sprintf("ping %s", addr)
	if _, err := io.WriteString(conn, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func expectOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v, want a working connection", what, err)
	}
}

func expectSilence(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: connected, want a timeout", what)
	} else if !isTimeout(err) {
		t.Errorf("%s: %v, want a timeout (no answer at all)", what, err)
	}
}

func port(l *Listener) string { return fmt.Sprint(l.Addr().(*net.TCPAddr).Port) }

func TestIntegrationRightWrongNoKey(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	good, bad := mustKey(t, "correct horse"), mustKey(t, "wrong horse")
	for _, tc := range []struct {
		name, network, laddr string
		hosts                []string
	}{
		{"v4", "tcp4", "127.0.0.1:0", []string{"127.0.0.1"}},
		{"v6", "tcp6", "[::1]:0", []string{"[::1]"}},
		{"dualstack", "tcp", ":0", []string{"127.0.0.1", "[::1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listenEcho(t, ns, tc.network, tc.laddr, Any(good))
			for _, h := range tc.hosts {
				addr := h + ":" + port(l)
				expectOK(t, "right key to "+addr, try(t, ns, addr, good, ""))
				expectSilence(t, "no key to "+addr, try(t, ns, addr, Key{}, ""))
				expectSilence(t, "wrong key to "+addr, try(t, ns, addr, bad, ""))
			}
		})
	}
}

// TestIntegrationDualStackHole is the regression test for the dual-stack pitfall: a ::/0
// key alone does not cover IPv4 peers of an AF_INET6 socket.
func TestIntegrationDualStackHole(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	key := mustKey(t, "dual")

	l := listenEcho(t, ns, "tcp", "0.0.0.0:0", Any(key))
	addr4 := "127.0.0.1:" + port(l)
	expectSilence(t, "unkeyed IPv4 client, Any rule", try(t, ns, addr4, Key{}, ""))
	expectOK(t, "keyed IPv4 client, Any rule", try(t, ns, addr4, key, ""))

	// Only ::/0 given: IPv4 peers meet the random catch-all, so they get silence too.
	l6 := listenEcho(t, ns, "tcp", ":0", []KeyRule{{AnyIPv6, key}})
	addr4 = "127.0.0.1:" + port(l6)
	expectSilence(t, "unkeyed IPv4 client, ::/0 rule only", try(t, ns, addr4, Key{}, ""))
	expectOK(t, "keyed IPv6 client, ::/0 rule only", try(t, ns, "[::1]:"+port(l6), key, ""))

	// The kernel's own behaviour that makes this necessary: a raw ::/0 key on a
	// dual-stack socket, and nothing else, lets unsigned IPv4 clients in.
	var raw net.Listener
	inNS(t, ns, func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			s, err := newRawSocket(c)
			if err != nil {
				return err
			}
			return s.set(AnyIPv6, key.Bytes())
		}}
		raw, err = lc.Listen(context.Background(), "tcp", ":0")
		return err
	})
	defer raw.Close()
	go func() {
		if c, err := raw.Accept(); err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	rawAddr := fmt.Sprintf("127.0.0.1:%d", raw.Addr().(*net.TCPAddr).Port)
	expectOK(t, "kernel control: unkeyed IPv4 to a raw ::/0-only socket", try(t, ns, rawAddr, Key{}, ""))
}

func TestIntegrationRotation(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	a, b := mustKey(t, "key-A"), mustKey(t, "key-B")
	l := listenEcho(t, ns, "tcp", ":0", Any(a))
	addr := "127.0.0.1:" + port(l)

	// An established connection made with A.
	var old net.Conn
	inNS(t, ns, func() (err error) {
		old, err = Dial(context.Background(), "tcp", addr, a)
		return err
	})
	defer old.Close()
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	expectOK(t, "old connection before rotation", echo(old))

	for _, r := range Any(b) {
		if err := l.SetKey(r.Prefix, r.Key); err != nil {
			t.Fatal(err)
		}
	}
	expectSilence(t, "old key after rotation", try(t, ns, addr, a, ""))
	expectOK(t, "new key after rotation", try(t, ns, addr, b, ""))
	expectOK(t, "old connection after rotation", echo(old))

	// A longer prefix wins over the catch-all.
	if err := l.SetKey(netip.MustParsePrefix("127.0.0.2/32"), a); err != nil {
		t.Fatal(err)
	}
	expectOK(t, "from 127.0.0.2 with the /32 key", try(t, ns, addr, a, "127.0.0.2"))
	expectSilence(t, "from 127.0.0.2 with the catch-all key", try(t, ns, addr, b, "127.0.0.2"))
	expectOK(t, "from 127.0.0.3 with the catch-all key", try(t, ns, addr, b, "127.0.0.3"))
	if got := len(l.Keys()); got != 3 {
		t.Errorf("Keys() has %d rules, want 3: %v", got, l.Keys())
	}

	// Removing every rule leaves the port silent, never open.
	for _, r := range l.Keys() {
		if err := l.RemoveKey(r.Prefix); err != nil {
			t.Fatalf("RemoveKey(%v): %v", r.Prefix, err)
		}
	}
	expectSilence(t, "unkeyed client after removing all rules", try(t, ns, addr, Key{}, ""))
	expectSilence(t, "old catch-all key after removing all rules", try(t, ns, addr, b, ""))
	if err := l.RemoveKey(AnyIPv4); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("RemoveKey of a missing rule: %v, want ErrNoSuchKey", err)
	}
	// Grants can come back later.
	if err := l.SetKey(netip.MustParsePrefix("127.0.0.1/32"), b); err != nil {
		t.Fatal(err)
	}
	expectOK(t, "re-granted /32", try(t, ns, addr, b, ""))
}

func TestIntegrationVeth(t *testing.T) {
	nstest.Require(t)
	srv, cli := nstest.Pair(t)
	key := mustKey(t, "veth key")
	l := listenEcho(t, srv, "tcp", ":0", Any(key))
	for _, h := range []string{nstest.SrvIP4, "[" + nstest.SrvIP6 + "]"} {
		addr := h + ":" + port(l)
		expectOK(t, "right key to "+addr, try(t, cli, addr, key, ""))
		expectSilence(t, "no key to "+addr, try(t, cli, addr, Key{}, ""))
		expectSilence(t, "wrong key to "+addr, try(t, cli, addr, mustKey(t, "nope"), ""))
	}
}

func TestIntegrationKeyLimit(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	l := listenEcho(t, ns, "tcp4", "127.0.0.1:0", nil)
	key := mustKey(t, "k")
	var err error
	n := 0
	for ; n < 20000; n++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32)
		if err = l.SetKey(p, key); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrTooManyKeys) || !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("after %d keys: %v, want ErrTooManyKeys", n, err)
	}
	t.Logf("%d keys fit on one socket; then: %v", n, err)
	if len(l.Keys()) != n {
		t.Errorf("Keys() has %d rules, want %d", len(l.Keys()), n)
	}
	// Deleting a key the kernel does not have is ENOENT; removing one frees a slot.
	var kerr *KeyError
	inNS(t, ns, func() error {
		s, err := newRawSocket(mustSyscallConn(t, l))
		if err != nil {
			return err
		}
		derr := s.del(netip.MustParsePrefix("192.0.2.1/32"))
		if !errors.As(derr, &kerr) || !errors.Is(derr, ErrNoSuchKey) || !errors.Is(derr, syscall.ENOENT) {
			t.Errorf("delete of a missing key: %v, want ENOENT", derr)
		}
		return nil
	})
	if err := l.RemoveKey(netip.MustParsePrefix("10.0.0.5/32")); err != nil {
		t.Fatal(err)
	}
	if err := l.SetKey(netip.MustParsePrefix("192.0.2.1/32"), key); err != nil {
		t.Errorf("set after freeing a slot: %v", err)
	}
}

func mustSyscallConn(t *testing.T, l *Listener) syscall.RawConn {
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestIntegrationKernelRefusals(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	inNS(t, ns, func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		// An AF_INET6 struct on an AF_INET socket: the kernel says EINVAL.
		err = setFDKey(fd, syscall.AF_INET6, AnyIPv6, []byte("k"), false)
		if !errors.Is(err, ErrInvalid) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("family mismatch: %v, want EINVAL", err)
		}
		return nil
	})
}

// TestProbeAO checks that the TCP-AO probe either succeeds or says the kernel lacks
// TCP-AO (this machine's kernel has CONFIG_TCP_AO unset).
func TestProbeAO(t *testing.T) {
	err := probeAO()
	if err != nil && !errors.Is(err, errAONotSupported) {
		t.Errorf("AO probe: %v, want nil or errAONotSupported", err)
	}
	t.Logf("TCP-AO probe: %v", err)
}

// loHosts returns n /32 rules for 127.b.x.y (x.y counting from 0), all with key k.
func loHosts(b byte, n int, k Key) []KeyRule {
	out := make([]KeyRule, n)
	for i := range n {
		out[i] = KeyRule{netip.PrefixFrom(netip.AddrFrom4([4]byte{127, b, byte(i >> 8), byte(i)}), 32), k}
	}
	return out
}

// headroom counts how many more keys fit on l's socket (filling it with 127.250.x.y
// hosts up to ENOMEM) and removes them again.
func headroom(t *testing.T, l *Listener) int {
	t.Helper()
	k := mustKey(t, "filler")
	extra := loHosts(250, 5000, k)
	n := 0
	for ; n < len(extra); n++ {
		if err := l.SetKey(extra[n].Prefix, k); err != nil {
			if !errors.Is(err, ErrTooManyKeys) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	for _, r := range extra[:n] {
		if err := l.RemoveKey(r.Prefix); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestIntegrationReplaceNearLimit is issue 15's reload near the kernel's ~960-key limit
// (net.core.optmem_max, set to the default 128 KiB in the test's namespace): a new table
// that fits is reached although old and new together would not, and one that does not
// fit leaves the previous keys in force, to the byte of option memory.
func TestIntegrationReplaceNearLimit(t *testing.T) {
	nstest.Require(t, "sysctl")
	ns := nstest.New(t)
	ns.Run(t, "sysctl", "-qw", "net.core.optmem_max=131072")
	all, old, neu := mustKey(t, "catch-all"), mustKey(t, "old host key"), mustKey(t, "new host key")
	l := listenEcho(t, ns, "tcp", ":0", Any(all))
	capacity := headroom(t, l) // host keys that fit besides the two catch-alls
	t.Logf("%d host keys fit besides the catch-alls", capacity)
	if capacity < 500 {
		t.Fatalf("only %d keys fit with optmem_max 128 KiB", capacity)
	}
	addr := "127.0.0.1:" + port(l)

	// Nearly full: capacity-2 hosts of 127.1.x.y with the old key.
	first := loHosts(1, capacity-2, old)
	if err := l.Replace(append(Any(all), first...)); err != nil {
		t.Fatalf("first table: %v", err)
	}
	// Swap out half: drop the first half, keep the rest, add as many 127.2.x.y hosts as
	// were dropped, minus one. Adding before removing would need ~1.5x the memory.
	half := len(first) / 2
	second := append(append(Any(all), first[half:]...), loHosts(2, half-1, neu)...)
	if err := l.Replace(second); err != nil {
		t.Fatalf("reload to a table that fits: %v", err)
	}
	if got := len(l.Keys()); got != len(second) {
		t.Errorf("Keys() has %d rules, want %d", got, len(second))
	}
	departed, kept, added := first[0].Prefix.Addr().String(), first[half].Prefix.Addr().String(), "127.2.0.0"
	expectOK(t, "departed host falls back to the catch-all key", try(t, ns, addr, all, departed))
	expectSilence(t, "departed host with its old key", try(t, ns, addr, old, departed))
	expectOK(t, "kept host with the old key", try(t, ns, addr, old, kept))
	expectOK(t, "added host with the new key", try(t, ns, addr, neu, added))
	expectSilence(t, "added host with the catch-all key", try(t, ns, addr, all, added))
	room := headroom(t, l)
	if room != capacity-(len(second)-2) {
		t.Errorf("after the reload %d more keys fit, want %d", room, capacity-(len(second)-2))
	}

	// A table that does not fit: refused, and the second table stays, exactly.
	third := append(append(Any(neu), first[half+1:]...), loHosts(2, half+room+10, neu)...)
	err := l.Replace(third)
	var re *ReplaceError
	if !errors.As(err, &re) || !re.Restored || !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("reload to a table that does not fit: %v, want a restored ReplaceError", err)
	}
	t.Log(err)
	if got := l.Keys(); len(got) != len(second) {
		t.Errorf("Keys() has %d rules after the failed reload, want %d", len(got), len(second))
	}
	if got := headroom(t, l); got != room {
		t.Errorf("after the failed reload %d more keys fit, want %d as before it", got, room)
	}
	expectOK(t, "catch-all key after the failed reload", try(t, ns, addr, all, departed))
	expectOK(t, "kept host after the failed reload", try(t, ns, addr, old, kept))
	expectSilence(t, "host only the refused table would add", try(t, ns, addr, neu, fmt.Sprintf("127.2.%d.%d", (half+5)>>8, byte(half+5))))
}
