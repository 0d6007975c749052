package server

import (
	"bufio"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationPcapFile: knocks recorded by tcpdump are decided offline by --pcap-file at
// their capture time (a good knock is granted in the log, a forged one rejected), and nothing
// is granted in the firewall.
func TestIntegrationPcapFile(t *testing.T) {
	nstest.Require(t, "fwknop", "nft", "tcpdump")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	// A new veth drops packets until it is fully up: wait for a connect to get through.
	sesametest.Listen(t, srv, ":7", sesametest.Echo)
	sesametest.WaitDial(t, cli, nstest.SrvIP4+":7", sesametest.Open, 10*time.Second)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "knocks.pcap")
	dump := srv.Command("tcpdump", "-i", "any", "--immediate-mode", "-U", "-w", pcap, "udp", "port", "62201")
	stderr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	// tcpdump says "listening on ..." once it captures.
	r := bufio.NewReader(stderr)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("tcpdump: %q, %v", line, err)
		}
		if strings.Contains(line, "listening on") {
			break
		}
	}
	fwknop(t, cli, "-A", "tcp/22", "-a", nstest.CliIP4, "-D", nstest.SrvIP4)
	sendUDP(t, cli, "", spaAddr4, garbage(1, 200)...)
	time.Sleep(300 * time.Millisecond) // -U writes each packet as it comes; let the last one land
	dump.Process.Signal(syscall.SIGINT)
	dump.Wait()

	conf := filepath.Join(dir, "fwknopd.conf")
	access := filepath.Join(dir, "access.conf")
	sesametest.WriteFile(t, conf, "FWKNOP_RUN_DIR "+dir+"\n")
	sesametest.WriteFile(t, access, accessStanza("10.99.0.0/24", "OPEN_PORTS tcp/22"))
	out, err := srv.Command(nstest.Binary(t), "server", "-c", conf, "-a", access, "--pcap-file", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("--pcap-file: %v\n%s", err, out)
	}
	log := string(out)
	if !strings.Contains(log, `msg="access granted" src=10.99.0.2`) || !strings.Contains(log, "test=true") ||
		!strings.Contains(log, "reason=") {
		t.Fatalf("offline verdicts:\n%s", log)
	}
	if tables, _ := srv.Command("nft", "list", "tables").CombinedOutput(); strings.Contains(string(tables), "sesame") {
		t.Fatalf("--pcap-file touched the firewall:\n%s", tables)
	}
}
