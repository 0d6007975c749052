// Package fleettest builds a fleet of sesame gateways in network namespaces, for the fleet's
// end-to-end tests and benchmarks (bench/fleet).
//
// New makes a LAN namespace holding a Linux bridge (10.90.0.1/24) and Debian's redis-server
// bound to that address, N gateway namespaces (10.90.0.11, .12, ...; default three) each
// running "sesame server" in UDP mode with a fleet key, the same SESAME_FLEET_GROUP and a stanza
// with OPEN_PORTS tcp/22 in front of a TCP listener on port 22, and one client namespace
// (10.90.0.2, plus the addresses AddClientIPs adds) on the same bridge, so it reaches every
// gateway and a grant made for one of its addresses by any gateway can be used on all of them.
// Packets are built by Debian's fwknop client (Packet, -T) and sent by the test (Send), or sent
// by fwknop itself (Knock). Everything is removed when the test ends; processes are stopped by
// PID.
package fleettest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/redistest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// Keys of the gateways' stanza (fwknop --key-rijndael / --key-hmac).
const (
	Key     = "fleettest-key"
	HMACKey = "fleettest-hmac"
)

// Addresses on the LAN.
const (
	RedisIP  = "10.90.0.1"
	ClientIP = "10.90.0.2"
	SPAPort  = 62201
)

// Options configure New.
type Options struct {
	Gateways int    // default 3
	OnError  string // SESAME_FLEET_ON_ERROR (default closed)
	// Timeout is SESAME_FLEET_TIMEOUT in milliseconds (default 200).
	Timeout int
	// AccessTimeout is the stanza's FW_ACCESS_TIMEOUT in seconds (default 30).
	AccessTimeout int
	// Config is more fwknopd.conf text for every gateway.
	Config string
	// Args are more "sesame server" arguments ("-v").
	Args []string
}

// Rig is a fleet in namespaces.
type Rig struct {
	LAN      *nstest.NS
	Client   *nstest.NS
	Redis    *redistest.Server
	Gateways []*Gateway
	Group    string
	KeyFile  string

	mu     sync.Mutex
	nextIP int
}

// Gateway is one gateway: its namespace and its sesame server.
type Gateway struct {
	Name string // "A", "B", ...
	IP   string
	NS   *nstest.NS
	*sesametest.Server
}

// SSHAddr is the gateway's guarded port 22.
func (g *Gateway) SSHAddr() string { return net.JoinHostPort(g.IP, "22") }

// SPAAddr is where the gateway reads knocks.
func (g *Gateway) SPAAddr() string { return fmt.Sprintf("%s:%d", g.IP, SPAPort) }

// New builds the rig and starts every gateway (see the package doc). It needs root, fwknop, nft,
// redis-server and redis-cli; without them it skips t (fails it under CI=true).
func New(t testing.TB, o Options) *Rig {
	t.Helper()
	nstest.Require(t, "fwknop", "nft", "redis-server", "redis-cli")
	redistest.Require(t)
	if o.Gateways == 0 {
		o.Gateways = 3
	}
	if o.OnError == "" {
		o.OnError = "closed"
	}
	if o.Timeout == 0 {
		o.Timeout = 200
	}
	if o.AccessTimeout == 0 {
		o.AccessTimeout = 30
	}
	r := &Rig{LAN: nstest.New(t), Group: "fleettest-" + randomHex(4), nextIP: 100}
	// A fixed address: a bridge without one takes the lowest of its ports' addresses, so a port
	// added later would change it under the neighbour caches of the namespaces already on it
	// (their traffic to Redis then stalls for seconds).
	r.LAN.Run(t, "ip", "link", "add", "br0", "address", "02:00:0a:5a:00:01", "type", "bridge")
	r.LAN.Run(t, "ip", "addr", "add", RedisIP+"/24", "dev", "br0")
	r.LAN.Run(t, "ip", "link", "set", "br0", "up")
	r.Redis = redistest.Start(t, redistest.Options{NS: r.LAN, Addr: RedisIP})
	r.Client = r.join(t, ClientIP)

	keyFile := filepath.Join(t.TempDir(), "fleet.key")
	WriteKeyFile(t, keyFile)
	r.KeyFile = keyFile

	access := fmt.Sprintf("SOURCE 10.90.0.0/24\nKEY %s\nHMAC_KEY %s\nOPEN_PORTS tcp/22\nFW_ACCESS_TIMEOUT %d\n",
		Key, HMACKey, o.AccessTimeout)
	r.Gateways = make([]*Gateway, o.Gateways)
	for i := range r.Gateways {
		name := string(rune('A' + i))
		ip := fmt.Sprintf("10.90.0.%d", 11+i)
		ns := r.join(t, ip)
		sesametest.Listen(t, ns, ":22", sesametest.Banner)
		conf := fmt.Sprintf("ENABLE_UDP_SERVER Y;\nSESAME_FLEET_REDIS redis://%s:%d\nSESAME_FLEET_GROUP %s\n"+
			"SESAME_FLEET_KEY_FILE %s\nSESAME_FLEET_ON_ERROR %s\nSESAME_FLEET_TIMEOUT %d\nSESAME_FLEET_NAME gw-%s\n%s",
			RedisIP, r.Redis.Port, r.Group, keyFile, o.OnError, o.Timeout, strings.ToLower(name), o.Config)
		r.Gateways[i] = &Gateway{Name: name, IP: ip, NS: ns,
			Server: sesametest.StartServer(t, ns, sesametest.ServerOptions{Config: conf, Access: access, Args: o.Args})}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-server log:\n%s", r.Redis.Log())
		}
	})
	return r
}

// join makes a namespace on the LAN bridge with address ip/24.
func (r *Rig) join(t testing.TB, ip string) *nstest.NS {
	ns := nstest.New(t)
	lanIf, _ := nstest.Connect(t, r.LAN, ns, nil, []string{ip + "/24"})
	r.LAN.Run(t, "ip", "link", "set", lanIf, "master", "br0")
	return ns
}

// AddClientIPs gives the client n more addresses on the LAN (10.90.0.100 upwards) and returns
// them: each knock of a test that must not meet an earlier grant uses its own.
func (r *Rig) AddClientIPs(t testing.TB, n int) []string {
	t.Helper()
	r.mu.Lock()
	first := r.nextIP
	r.nextIP += n
	r.mu.Unlock()
	if first+n > 250 {
		t.Fatalf("AddClientIPs: out of addresses")
	}
	ifc := r.clientIf(t)
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.90.0.%d", first+i)
		r.Client.Run(t, "ip", "addr", "add", ips[i]+"/24", "dev", ifc)
	}
	return ips
}

func (r *Rig) clientIf(t testing.TB) string {
	out := r.Client.Run(t, "ip", "-o", "-4", "addr", "show", "to", ClientIP)
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("client interface: %q", out)
	}
	return f[1]
}

// Packet builds a knock with Debian's fwknop client (-T: built, not sent) that asks for
// tcp/22 for allow.
func Packet(t testing.TB, allow string) []byte {
	t.Helper()
	res := fwknoptest.Client(t, "--use-hmac", "--key-rijndael", Key, "--key-hmac", HMACKey,
		"-A", "tcp/22", "-a", allow, "-D", "10.90.0.11")
	return []byte(res.Wire)
}

// Packets builds n knocks for allows, in parallel.
func Packets(t testing.TB, allows []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(allows))
	errs := make([]error, len(allows))
	var wg sync.WaitGroup
	dir := t.TempDir()
	sem := make(chan struct{}, 8)
	for i, a := range allows {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := fwknoptest.RunClient(dir, "--use-hmac", "--key-rijndael", Key, "--key-hmac", HMACKey,
				"-A", "tcp/22", "-a", a, "-D", "10.90.0.11")
			out[i], errs[i] = []byte(res.Wire), err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// Knock runs Debian's fwknop client in the client namespace: it sends a knock for tcp/22 for
// allow to g, and returns the client's output.
func (r *Rig) Knock(t testing.TB, g *Gateway, allow string) string {
	t.Helper()
	return fwknoptest.Knock(t, r.Client, "--use-hmac", "--key-rijndael", Key, "--key-hmac", HMACKey,
		"-A", "tcp/22", "-a", allow, "-D", g.IP)
}

// Send sends pkt from the client to g's SPA port.
func (r *Rig) Send(t testing.TB, g *Gateway, pkt []byte) {
	t.Helper()
	err := r.Client.Do(t, func() error {
		c, err := net.Dial("udp", g.SPAAddr())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(pkt)
		return err
	})
	if err != nil {
		t.Fatalf("send to %s: %v", g.Name, err)
	}
}

// Dial tries one TCP connection from the client's address local to addr (see
// sesametest.Dial).
func (r *Rig) Dial(t testing.TB, local, addr string, timeout time.Duration) sesametest.DialResult {
	t.Helper()
	var res sesametest.DialResult
	err := r.Client.Do(t, func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		var ne net.Error
		switch {
		case err == nil:
			c.Close()
			res = sesametest.Open
		case errors.As(err, &ne) && ne.Timeout():
			res = sesametest.Timeout
		default:
			if strings.Contains(err.Error(), "refused") {
				res = sesametest.Refused
				return nil
			}
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	return res
}

// WaitDial retries Dial (300 ms each) until it gives want; a Timeout must be seen twice in a
// row. It fails t after within.
func (r *Rig) WaitDial(t testing.TB, local, addr string, want sesametest.DialResult, within time.Duration) time.Duration {
	t.Helper()
	start, streak := time.Now(), 0
	for {
		res := r.Dial(t, local, addr, 300*time.Millisecond)
		if res == want {
			if streak++; want != sesametest.Timeout || streak == 2 {
				return time.Since(start)
			}
			continue
		}
		streak = 0
		if time.Since(start) > within {
			t.Fatalf("dial %s from %s: %v, still not %v after %v", addr, local, res, want, within)
		}
		if res != sesametest.Timeout {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// AttemptEvery is KnockToOpen's resolution: a connect attempt whose SYN is dropped times out
// after it.
const AttemptEvery = 200 * time.Microsecond

// KnockToOpen sends pkt to knock (from the client's main address) and tries a TCP connect from
// local to open's port 22 every AttemptEvery until one completes; it returns the time from the
// send to that connect, or an error after limit.
func (r *Rig) KnockToOpen(t testing.TB, knock, open *Gateway, pkt []byte, local string, limit time.Duration) (time.Duration, error) {
	var d time.Duration
	err := r.Client.Do(t, func() error {
		c, err := net.Dial("udp", knock.SPAAddr())
		if err != nil {
			return err
		}
		defer c.Close()
		dialer := net.Dialer{Timeout: AttemptEvery, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		start := time.Now()
		if _, err := c.Write(pkt); err != nil {
			return err
		}
		for time.Since(start) < limit {
			conn, err := dialer.Dial("tcp", open.SSHAddr())
			if err == nil {
				d = time.Since(start)
				conn.Close()
				return nil
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				time.Sleep(AttemptEvery)
			}
		}
		return fmt.Errorf("%s:22 not open from %s %v after the knock on %s", open.Name, local, limit, knock.Name)
	})
	return d, err
}

// LogCount is the number of log lines of g holding every one of substrs.
func LogCount(g *Gateway, substrs ...string) int { return len(g.LogLines(substrs...)) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// WriteKeyFile writes a fleet key file (mode 600) to path.
func WriteKeyFile(t testing.TB, path string) {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
