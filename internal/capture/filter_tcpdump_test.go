package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// writePcap writes a little-endian microsecond pcap file of link type link; record i is
// stamped i+1 seconds after the epoch.
func writePcap(t testing.TB, path string, link uint32, recs [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, pcapBytes(binary.LittleEndian, false, link, recs), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pcapBytes is a pcap file in byte order o, with nanosecond timestamps if nanos; record i is
// stamped i+1 seconds and i+1 ticks after the epoch.
func pcapBytes(o orderAppender, nanos bool, link uint32, recs [][]byte) []byte {
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	b := o.AppendUint32(nil, magic)
	b = o.AppendUint16(b, 2)
	b = o.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = o.AppendUint32(b, 65535)
	b = o.AppendUint32(b, link)
	for i, r := range recs {
		b = o.AppendUint32(b, uint32(i+1))
		b = o.AppendUint32(b, uint32(i+1))
		b = o.AppendUint32(b, uint32(len(r)))
		b = o.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

// requireTool skips (or under CI fails) a test that needs a program on PATH but no root.
func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if nstest.InCI() {
			t.Fatalf("this test needs %s (installed by scripts/setup)", name)
		}
		t.Skipf("needs %s", name)
	}
}

// tcpdumpMatches runs tcpdump on the pcap file with expr and returns the indexes of the records
// it prints.
func tcpdumpMatches(t *testing.T, path, expr string) map[int]bool {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", path, "-nn", "-q", "-tt", expr).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump %q: %v\n%s", expr, err, out)
	}
	got := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		sec, _, ok := strings.Cut(line, ".")
		if n, err := strconv.Atoi(sec); ok && err == nil {
			got[n-1] = true
		}
	}
	return got
}

// TestFilterAgainstTcpdump: for a corpus of expressions, Match and the kernel program accept
// the same packets as tcpdump (libpcap) does, reading them from a raw-IP pcap file. The
// packets leave out what sesame matches on purpose differently: IPv6 extension headers
// (libpcap does not look past them) and fragments (sesame matches the reassembled datagram).
// Expressions indexing transport headers are compared on IPv4 packets only: libpcap's tcp[],
// udp[] ... do not apply to IPv6.
func TestFilterAgainstTcpdump(t *testing.T) {
	requireTool(t, "tcpdump")
	pkts := filterPackets()
	var names []string
	for name := range pkts {
		if !strings.Contains(name, "exts") && !strings.Contains(name, "hop") && !strings.Contains(name, "rt ah") &&
			name != "tcp6 dst" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	recs := make([][]byte, len(names))
	for i, n := range names {
		recs[i] = pkts[n]
	}
	path := filepath.Join(t.TempDir(), "raw.pcap")
	writePcap(t, path, LinkRaw, recs)

	exprs := []struct {
		expr   string
		v4only bool
	}{
		{"udp port 62201", false}, {"udp dst port 62201", false}, {"udp src port 62201", false},
		{"port 62201", false}, {"tcp port 62201 or 80", false}, {"portrange 50-100", false},
		{"udp portrange 60000-65535", false}, {"src portrange 1-100 or dst port 80", false},
		{"udp src and dst port 62201", false}, {"udp port 62201 or 53 or 5353", false},
		{"udp and (src port 40000 or dst port 53)", false}, {"port domain or 80", false},
		{"host 10.99.0.2", false}, {"src host 10.99.0.1", false}, {"dst host fd99::1", false},
		{"host fd99::2 or host 192.0.2.9", false}, {"src and dst host 10.99.0.2", false},
		{"host 10.99.0.2 and (10.99.0.1 or 192.0.2.9)", false}, {"net 10.0.0.0/8", false},
		{"net 10.99", false}, {"dst net 224.0.0.0/4", false}, {"src net fd99::/64", false},
		{"not net 10.0.0.0/8", false}, {"net 10.99.0.0 mask 255.255.255.0", false},
		{"ip", false}, {"ip6", false}, {"tcp", false}, {"udp", false}, {"icmp", false},
		{"icmp6", false}, {"igmp", false}, {"ah or esp", false}, {"sctp or pim or vrrp", false},
		{"ip proto 17", false}, {"ip6 proto 17", false}, {"proto 6", false}, {"ip6 proto 50", false},
		{"ip proto \\icmp or ip6 proto \\udp", false}, {"ip multicast", false},
		{"ip6 multicast", false}, {"ip broadcast", false}, {"less 40", false}, {"greater 100", false},
		{"len = 40", false}, {"len > 200 and udp", false}, {"len - 20 > 100 / 2", false},
		{"not (udp or tcp)", false}, {"! udp && ! tcp || icmp", false},
		{"ip and udp or tcp and port 80", false},
		{"tcp[tcpflags] & tcp-syn != 0", true}, {"udp[8:2] = 0x4142", true},
		{"icmp[icmptype] = icmp-echo", false}, {"ip[9] = 6 and ip[0] & 0xf > 5", false},
		{"ip6[6] = 17", false}, {"ip[2:2] / (ip[9] - 17) = 0 or ip6", false},
		{"ip[16] >= 224", false}, {"ip6[24] = 0xff", false}, {"ip[0] + 1 != 0", false},
		// No unary minus of a load ("-ip[0] != 0"): libpcap compiles those to "accept all";
		// sesame computes them (TestProgramMatches).
		{"0 - ip[0] = 0xffffffbb", false},
		{"ip[1] | ip[0] ^ 3 = 0x46", false}, {"ip[12:4] & 0xffffff00 = 0x0a630000", false},
		{"udp[udp[4:2] - 1] = 0x2f", true}, {"tcp[12] >> 4 > 5 or udp[4:2] < 20", true},
		{"ip[0] << 1 > 0x80 and ip[3] % 7 != 2", false},
	}
	for _, e := range exprs {
		f, err := CompileFilter(e.expr)
		if err != nil {
			t.Errorf("CompileFilter(%q): %v", e.expr, err)
			continue
		}
		prog := mustProgram(t, f, ProgramOptions{})
		want := tcpdumpMatches(t, path, e.expr)
		for i, name := range names {
			if e.v4only && pkts[name][0]>>4 == 6 {
				continue
			}
			if got := f.Match(recs[i]); got != want[i] {
				t.Errorf("%q on %s: Match = %v, tcpdump %v", e.expr, name, got, want[i])
			}
			if got := vmRun(t, prog, metaFor(recs[i]), recs[i]) != 0; got != want[i] {
				t.Errorf("%q on %s: kernel program = %v, tcpdump %v", e.expr, name, got, want[i])
			}
		}
	}
}

// startTcpdump starts tcpdump in ns with args and waits until it listens. The returned channel
// yields its exit; it is stopped by PID at cleanup if still running.
func startTcpdump(t *testing.T, ns *nstest.NS, args ...string) <-chan error {
	t.Helper()
	cmd := ns.Command("tcpdump", args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				break
			}
		}
		io.Copy(io.Discard, stderr)
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // by PID; an error if it already exited is fine
		<-exited
	})
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump %v did not start listening", args)
	}
	return done
}

// TestIntegrationFileSourceTcpdump: tcpdump records knocks in a namespace (Ethernet on the veth,
// nanosecond Ethernet, Linux cooked v1 and v2 on "any"), two of them fragmented; FileSource
// finds the same knocks in each file, once each, the fragmented ones reassembled.
func TestIntegrationFileSourceTcpdump(t *testing.T) {
	nstest.Require(t, "tcpdump")
	srv, cli := nstest.Pair(t)
	dir := t.TempDir()
	// tcpdump drops privileges to its own user, which must be able to write the files.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	captures := []struct {
		file string
		args []string
	}{
		{"eth.pcap", []string{"-i", srv.Ifc}},
		{"eth-ns.pcap", []string{"-i", srv.Ifc, "--time-stamp-precision", "nano"}},
		{"sll.pcap", []string{"-i", "any", "-y", "LINUX_SLL"}},
		{"sll2.pcap", []string{"-i", "any", "-y", "LINUX_SLL2"}},
	}
	// Every capture stops by itself after the 9 UDP packets sent below: 3 whole datagrams and
	// 3 fragments of each big one (3408 bytes of UDP over an MTU of 1500).
	var dones []<-chan error
	for _, c := range captures {
		args := append([]string{"-U", "-n", "-c", "9", "-w", filepath.Join(dir, c.file)}, c.args...)
		dones = append(dones, startTcpdump(t, srv, append(args, "udp")...))
	}
	sendUDP(t, cli, nstest.SrvIP4+":62201", []byte("knock four"), 0)
	sendUDP(t, cli, "["+nstest.SrvIP6+"]:62201", []byte("knock six"), 0)
	sendUDP(t, cli, nstest.SrvIP4+":53", []byte("decoy"), 0)
	big := []byte(strings.Repeat("fragmented knock ", 200))
	sendUDP(t, cli, nstest.SrvIP4+":62201", big, 0)
	sendUDP(t, cli, "["+nstest.SrvIP6+"]:62201", big, 0)
	for i, d := range dones {
		select {
		case err := <-d:
			if err != nil {
				t.Fatalf("tcpdump for %s: %v", captures[i].file, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("tcpdump for %s did not see the 9 packets", captures[i].file)
		}
	}
	for _, c := range captures {
		t.Run(c.file, func(t *testing.T) {
			src, err := NewFileSource(filepath.Join(dir, c.file), "udp dst port 62201")
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var got []string
			for {
				p, err := src.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				got = append(got, string(p.Payload))
				if d := time.Since(src.Time()); d < 0 || d > time.Minute {
					t.Errorf("capture time %v", src.Time())
				}
			}
			want := []string{"knock four", "knock six", string(big), string(big)}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("got %d packets %.40q, want %d", len(got), got, len(want))
			}
			st, _ := src.Stats()
			if st.Received != 9 || st.Fragments != 6 || st.Reassembled != 2 || st.Rejected != 1 {
				t.Errorf("stats %+v: want 9 records, 6 fragments making 2 datagrams, the decoy rejected", st)
			}
		})
	}
}
