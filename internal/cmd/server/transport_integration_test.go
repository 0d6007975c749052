package server

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// SPA over TCP and HTTP (fwknop -P tcp / -P http): the accept-and-close TCP server lets the real
// client finish its handshake, the sniffer reads its segment, and the HTTP request's packet is
// unwrapped. Slow and oversized requests hold nothing and grant nothing.
func TestIntegrationSPAOverTCPAndHTTP(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{
		Config: fmt.Sprintf("PCAP_INTF %s;\nPCAP_FILTER udp port 62201 or tcp port 62201;\nENABLE_TCP_SERVER Y;\nENABLE_SPA_OVER_HTTP Y;\n", srv.Ifc),
		Access: accessStanza("10.99.0.0/24", "OPEN_PORTS tcp/22")})
	d.WaitLog(t, 1, 5*time.Second, "tcp server: accepting and closing connections")

	for i, proto := range []string{"tcp", "http"} {
		if r := sesametest.Dial(t, cli, sshAddr4, 300*time.Millisecond); r != sesametest.Timeout {
			t.Fatalf("%s: before the knock: %v, want timeout", proto, r)
		}
		fwknop(t, cli, "-A", "tcp/22", "-a", nstest.CliIP4, "-D", nstest.SrvIP4, "-P", proto)
		sesametest.WaitDial(t, cli, sshAddr4, sesametest.Open, 3*time.Second)
		d.WaitLog(t, i+1, 2*time.Second, "access granted", "src="+nstest.CliIP4)
		sesametest.WaitDial(t, cli, sshAddr4, sesametest.Timeout, 6*time.Second)
	}

	// Slow clients: connections that never send are closed by the server at once.
	var conns []net.Conn
	for range 50 {
		c, err := sesametest.DialConn(t, cli, spaAddr4, time.Second)
		if err != nil {
			t.Fatalf("connect to the TCP server: %v", err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !strings.Contains(fmt.Sprint(err), "reset") {
			t.Errorf("connection %d: read %v, want end of file (closed by the server)", i, err)
		}
		c.Close()
	}

	// An oversized HTTP request (more than one SPA packet can be; the sniffer sees it one TCP
	// segment at a time) is refused, not granted.
	c, err := sesametest.DialConn(t, cli, spaAddr4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET /" + strings.Repeat("A", 1400) + " HTTP/1.0\r\nUser-Agent: Fwknop/2.6.10\r\n\r\n"))
	c.Close()
	d.WaitLog(t, 1, 3*time.Second, "SPA packet rejected", "src="+nstest.CliIP4)
	if strings.Count(d.Log(), "access granted") != 2 {
		t.Errorf("grants other than the two knocks:\n%s", d.Log())
	}
}
