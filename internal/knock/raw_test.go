package knock

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// rawRecv reads segments of one IP protocol (the IPv4 header removed) until match accepts
// one, and returns it with its source address.
func rawRecv(c net.PacketConn, match func([]byte) bool) ([]byte, netip.Addr, error) {
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return nil, netip.Addr{}, err
		}
		if match(buf[:n]) {
			a, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			return append([]byte(nil), buf[:n]...), a.Unmap(), nil
		}
	}
}

// synTo matches a TCP SYN to port carrying testWire.
func synTo(port int) func([]byte) bool {
	return func(b []byte) bool {
		return len(b) >= 20 && int(binary.BigEndian.Uint16(b[2:])) == port && b[13] == 0x02 &&
			string(b[int(b[12]>>4)*4:]) == testWire
	}
}

// TestSendRawTCPAndSpoof sends -P tcpraw (a SYN carrying the packet) and -Q spoofed udpraw,
// tcpraw and icmp packets on a namespace's loopback and reads them back with raw sockets:
// the source address is the spoofed one and the checksums are right. When Debian's fwknop is
// installed, its tcpraw packet is read the same way (fwknop leaves the TCP checksum 0).
func TestSendRawTCPAndSpoof(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	spoof := netip.MustParseAddr("10.9.9.9")
	lo := netip.MustParseAddr("127.0.0.1")
	err := ns.Do(t, func() error {
		tcp, err := net.ListenPacket("ip4:tcp", "127.0.0.1")
		if err != nil {
			return err
		}
		defer tcp.Close()
		udp, err := net.ListenPacket("ip4:udp", "127.0.0.1")
		if err != nil {
			return err
		}
		defer udp.Close()
		icmp, err := net.ListenPacket("ip4:icmp", "127.0.0.1")
		if err != nil {
			return err
		}
		defer icmp.Close()
		s := NetSender{}
		for _, c := range []struct {
			proto string
			port  int
			spoof netip.Addr
			from  netip.Addr
		}{{ProtoTCPRaw, 45001, netip.Addr{}, lo}, {ProtoTCPRaw, 45002, spoof, spoof}, {ProtoUDPRaw, 45003, spoof, spoof}} {
			tg := Target{Server: "127.0.0.1", Port: c.port, Proto: c.proto, SourcePort: 40002, SpoofSource: c.spoof}
			sent, err := s.Send(context.Background(), tg, testWire)
			if err != nil {
				return err
			}
			if sent.Bytes != len(testWire) || sent.Dest.Port() != uint16(c.port) {
				return fmt.Errorf("%+v: sent %+v", tg, sent)
			}
			var seg []byte
			var from netip.Addr
			if c.proto == ProtoTCPRaw {
				seg, from, err = rawRecv(tcp, synTo(c.port))
			} else {
				seg, from, err = rawRecv(udp, func(b []byte) bool {
					return len(b) > 8 && int(binary.BigEndian.Uint16(b[2:])) == c.port && string(b[8:]) == testWire
				})
			}
			if err != nil {
				return fmt.Errorf("%+v: %w", tg, err)
			}
			ipProto := map[string]int{ProtoTCPRaw: ipProtoTCP, ProtoUDPRaw: ipProtoUDP}[c.proto]
			if from != c.from || binary.BigEndian.Uint16(seg[0:]) != 40002 || checksum(pseudoSum(from, lo, ipProto, len(seg)), seg) != 0 {
				return fmt.Errorf("%+v: from %v, source port %d, checksum %#x", tg, from, binary.BigEndian.Uint16(seg), checksum(pseudoSum(from, lo, ipProto, len(seg)), seg))
			}
		}
		if _, err := s.Send(context.Background(), Target{Server: "127.0.0.1", Proto: ProtoICMP, SpoofSource: spoof}, testWire); err != nil {
			return err
		}
		msg, from, err := rawRecv(icmp, func(b []byte) bool { return len(b) > 8 && b[0] == 0 && string(b[8:]) == testWire })
		if err != nil || from != spoof || checksum(0, msg) != 0 {
			return fmt.Errorf("spoofed icmp: from %v, %v", from, err)
		}
		if _, err := s.Send(context.Background(), Target{Server: "::1", Port: 1, Proto: ProtoUDPRaw, SpoofSource: spoof}, testWire); err == nil {
			return fmt.Errorf("-Q to an IPv6 server accepted")
		}

		if _, err := exec.LookPath("fwknop"); err != nil {
			t.Log("fwknop not installed: its tcpraw packet is not compared")
			return nil
		}
		home := t.TempDir()
		pkt := home + "/pkt"
		cmd := ns.Command("fwknop", "--no-save-args", "--no-rc-file", "-D", "127.0.0.1", "-p", "45009", "-P", "tcpraw",
			"-Q", "10.9.9.9", "-a", "10.0.0.2", "-A", "tcp/22", "--key-rijndael", "abc", "-B", pkt)
		cmd.Env = append(os.Environ(), "HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("fwknop -P tcpraw: %v\n%s", err, out)
		}
		wire, err := os.ReadFile(pkt)
		if err != nil {
			return err
		}
		_, from, err = rawRecv(tcp, func(b []byte) bool {
			return len(b) >= 20 && binary.BigEndian.Uint16(b[2:]) == 45009 && b[13] == 0x02 &&
				string(b[20:])+"\n" == string(wire)
		})
		if err != nil || from != spoof {
			return fmt.Errorf("fwknop's tcpraw SYN: from %v, %v", from, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
