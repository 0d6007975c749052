package knock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

const testWire = "8LqA0jM+9s8QlcvIJAaz/K8nrp1xQ7gC"

func TestSendUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	src := freeUDPPort(t)
	sent, err := NetSender{}.Send(context.Background(), Target{Server: "127.0.0.1", Port: port, SourcePort: src}, testWire)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != testWire || sent.Bytes != len(testWire) {
		t.Errorf("got %q (%d sent)", buf[:n], sent.Bytes)
	}
	if from.(*net.UDPAddr).Port != src {
		t.Errorf("source port %d, want %d", from.(*net.UDPAddr).Port, src)
	}
}

func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// acceptOne returns what the first TCP client sends before closing its side.
func acceptOne(t *testing.T) (port int, got <-chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(c)
		ch <- string(b)
	}()
	return ln.Addr().(*net.TCPAddr).Port, ch
}

func TestSendTCPAndHTTP(t *testing.T) {
	port, got := acceptOne(t)
	if _, err := (NetSender{}).Send(context.Background(), Target{Server: "127.0.0.1", Port: port, Proto: "tcp"}, testWire); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != testWire {
		t.Errorf("tcp payload %q", s)
	}

	port, got = acceptOne(t)
	if _, err := (NetSender{}).Send(context.Background(), Target{Server: "127.0.0.1", Port: port, Proto: "http"}, testWire); err != nil {
		t.Fatal(err)
	}
	want := "GET /8LqA0jM-9s8QlcvIJAaz_K8nrp1xQ7gC HTTP/1.0\r\nUser-Agent: Fwknop/2.6.10\r\nAccept: */*\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	if s := <-got; s != want {
		t.Errorf("http request\n%q\nwant\n%q", s, want)
	}

	port, got = acceptOne(t)
	tg := Target{Server: "spa.example", Port: 62201, Proto: "http", HTTPProxy: fmt.Sprintf("127.0.0.1:%d", port), UserAgent: "Fwknop/x"}
	if _, err := (NetSender{}).Send(context.Background(), tg, testWire); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if !strings.HasPrefix(s, "GET http://spa.example:62201/8LqA0jM-9s8QlcvIJAaz_K8nrp1xQ7gC HTTP/1.0\r\nUser-Agent: Fwknop/x\r\n") {
		t.Errorf("proxy request %q", s)
	}
	// The request is one a real HTTP server parses.
	if _, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s))); err != nil {
		t.Errorf("proxy request does not parse: %v", err)
	}
}

func TestResolveServerErrors(t *testing.T) {
	_, err := ResolveServer(context.Background(), nil, "no-such-host.invalid", 0)
	if !errors.Is(err, ErrResolve) || !strings.Contains(err.Error(), "-D") {
		t.Errorf("unresolvable: %v", err)
	}
	if _, err := ResolveServer(context.Background(), nil, "10.0.0.1", 6); !errors.Is(err, ErrResolve) {
		t.Errorf("-6 with an IPv4 address: %v", err)
	}
	if a, err := ResolveServer(context.Background(), nil, "[fd99::1]", 6); err != nil || a.String() != "fd99::1" {
		t.Errorf("bracketed v6: %v %v", a, err)
	}
	if a, err := ResolveServer(context.Background(), nil, "localhost", 4); err != nil || !a.Is4() {
		t.Errorf("localhost -4: %v %v", a, err)
	}
}

func TestResolveMyIP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v4":
			fmt.Fprintln(w, "203.0.113.9")
		case "/v6":
			fmt.Fprintln(w, "<html>your address: 2001:db8::7 </html>")
		case "/none":
			fmt.Fprintln(w, "nothing here")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for path, want := range map[string]string{"/v4": "203.0.113.9", "/v6": "2001:db8::7"} {
		a, err := ResolveMyIP(context.Background(), srv.URL+path, "")
		if err != nil || a.String() != want {
			t.Errorf("%s: %v %v", path, a, err)
		}
	}
	for _, path := range []string{"/none", "/404"} {
		if _, err := ResolveMyIP(context.Background(), srv.URL+path, ""); err == nil {
			t.Errorf("%s accepted", path)
		}
	}
}

// TestSendRaw sends over ICMP and raw UDP on loopback and reads the packets back with raw
// sockets; it needs root (CAP_NET_RAW).
func TestSendRaw(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	err := ns.Do(t, func() error {
		icmp, err := net.ListenPacket("ip4:icmp", "127.0.0.1")
		if err != nil {
			return err
		}
		defer icmp.Close()
		udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer udp.Close()
		s := NetSender{}
		if _, err := s.Send(context.Background(), Target{Server: "127.0.0.1", Proto: "icmp"}, testWire); err != nil {
			return err
		}
		buf := make([]byte, 2048)
		icmp.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, _, err := icmp.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("icmp read: %w", err)
			}
			if n >= 8 && buf[0] == 0 && buf[1] == 0 && string(buf[8:n]) == testWire {
				if checksum(0, buf[:n]) != 0 {
					return errors.New("bad ICMP checksum")
				}
				break
			}
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		if _, err := s.Send(context.Background(), Target{Server: "127.0.0.1", Port: port, Proto: "udpraw", SourcePort: 40001}, testWire); err != nil {
			return err
		}
		udp.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := udp.ReadFrom(buf) // the kernel drops it if the checksum is wrong
		if err != nil {
			return fmt.Errorf("udpraw read: %w", err)
		}
		if string(buf[:n]) != testWire || from.(*net.UDPAddr).Port != 40001 {
			return fmt.Errorf("udpraw got %q from %v", buf[:n], from)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSendUDPv6(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		if nstest.InCI() {
			t.Fatalf("no IPv6 loopback: %v", err)
		}
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	if _, err := (NetSender{}).Send(context.Background(), Target{Server: "::1", Port: port, Family: 6}, testWire); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != testWire {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

func FuzzParseMyIP(f *testing.F) {
	f.Add("203.0.113.9\n")
	f.Add("<html>2001:db8::7</html>")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		a, err := parseMyIP(strings.NewReader(body), "u")
		if err == nil && (!a.IsValid() || a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("parseMyIP(%q) = %v", body, a)
		}
	})
}
