package benchtest

import (
	"net"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// DialUDP dials addr (IPv4 host:port) from the local address local ("" for any) in the
// calling thread's network namespace; call it inside nstest.NS.Do.
func DialUDP(local, addr string) (*net.UDPConn, error) {
	ra, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	var la *net.UDPAddr
	if local != "" {
		la = &net.UDPAddr{IP: net.ParseIP(local)}
	}
	return net.DialUDP("udp4", la, ra)
}

// Blast sends payloads in order from ns to addr over one socket, paced at rate packets a
// second (0: as fast as possible), and returns how long sending took. Write errors are
// ignored (a flooded receiver may refuse); it fails t if the socket cannot be made.
func Blast(t testing.TB, ns *nstest.NS, addr string, payloads [][]byte, rate int) time.Duration {
	t.Helper()
	var el time.Duration
	err := ns.Do(t, func() error {
		c, err := DialUDP("", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		for i, p := range payloads {
			c.Write(p)
			if rate > 0 && i%20 == 19 {
				due := start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))
				if w := time.Until(due); w > 0 {
					time.Sleep(w)
				}
			}
		}
		el = time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return el
}

// FloodFor sends payloads round-robin from ns to addr for d, as fast as one goroutine can,
// rotating over one socket per source address in srcs (none: one socket from any address),
// and returns the packets sent. It fails t if a socket cannot be made.
func FloodFor(t testing.TB, ns *nstest.NS, srcs []string, addr string, payloads [][]byte, d time.Duration) int {
	t.Helper()
	if len(srcs) == 0 {
		srcs = []string{""}
	}
	n := 0
	err := ns.Do(t, func() error {
		var cs []*net.UDPConn
		defer func() {
			for _, c := range cs {
				c.Close()
			}
		}()
		for _, s := range srcs {
			c, err := DialUDP(s, addr)
			if err != nil {
				return err
			}
			cs = append(cs, c)
		}
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			for range 32 {
				cs[n%len(cs)].Write(payloads[n%len(payloads)])
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
