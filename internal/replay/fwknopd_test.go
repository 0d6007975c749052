package replay

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

// TestIntegrationFwknopdDigestCache exchanges digest caches with the real fwknopd 2.6.10: a
// cache written by fwknopd after accepting a real client's packet is imported (the digest is
// spa.ReplayDigest of the packet), and fwknopd reads a cache that sesame appended to.
func TestIntegrationFwknopdDigestCache(t *testing.T) {
	nstest.Require(t, "fwknopd", "fwknop", "iptables")
	ns := nstest.New(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := filepath.Join(dir, "run")
	os.Mkdir(run, 0o700)
	cache := filepath.Join(run, "digest.cache")
	conf := write("fwknopd.conf", "PCAP_INTF lo\nENABLE_UDP_SERVER Y\nFWKNOP_RUN_DIR "+run+"\n")
	access := write("access.conf", "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\n")
	daemon := ns.Command("fwknopd", "-f", "-c", conf, "-a", access, "-d", cache)
	ns.Start(t, daemon)

	pkt := filepath.Join(dir, "pkt")
	for i := 0; i < 50; i++ { // wait for the UDP server to listen
		time.Sleep(200 * time.Millisecond)
		data, _ := os.ReadFile(cache)
		if strings.Count(string(data), "\n") > 1 {
			break
		}
		if i%5 == 4 {
			cmd := ns.Command("fwknop", "-A", "tcp/22", "-a", "127.0.0.1", "-D", "127.0.0.1",
				"--key-rijndael", "fwknoptest", "--key-hmac", "hmactest", "--use-hmac", "--no-save-args", "-B", pkt)
			cmd.Env = append(os.Environ(), "HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("fwknop: %v\n%s", err, out)
			}
		}
	}
	wire, err := os.ReadFile(pkt)
	if err != nil {
		t.Fatal(err)
	}
	wire = []byte(strings.TrimSpace(string(wire)))
	data, _ := os.ReadFile(cache)
	if !strings.Contains(string(data), " 17 127.0.0.1 ") {
		t.Fatalf("fwknopd wrote no digest line:\n%s", data)
	}

	c, err := OpenFile(cache, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Legacy < 1 || st.Skipped != 0 {
		t.Errorf("stats of fwknopd's cache: %+v\n%s", st, data)
	}
	d := spa.ReplayDigest(wire)
	if seen, _ := c.Seen(ctx, d); !seen {
		t.Errorf("digest %s of the accepted packet not found in fwknopd's cache:\n%s", d, data)
	}
	// sesame's lines carry the packet (an IPv6 one with 0.0.0.0 addresses) and survive a
	// compaction, which also keeps fwknopd's own line as it wrote it.
	p4 := Packet{Proto: 17, Src: netip.MustParseAddrPort("127.0.0.1:40000"), Dst: netip.MustParseAddrPort("127.0.0.1:62201")}
	p6 := Packet{Proto: 17, Src: netip.MustParseAddrPort("[fd99::2]:40001"), Dst: netip.MustParseAddrPort("[fd99::1]:62201")}
	if _, err := c.CheckAndAdd(WithPacket(ctx, p4), digestN(1), time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckAndAdd(WithPacket(ctx, p6), digestN(2), time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	closeT(t, c)
	after, _ := os.ReadFile(cache)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(l, "#") && !strings.Contains(string(after), l+"\n") {
			t.Errorf("compaction lost fwknopd's line %q:\n%s", l, after)
		}
	}
	for _, w := range []string{digestN(1) + " 17 127.0.0.1 40000 127.0.0.1 62201 ", digestN(2) + " 17 0.0.0.0 40001 0.0.0.0 62201 "} {
		if !strings.Contains(string(after), w) {
			t.Errorf("no line %q in\n%s", w, after)
		}
	}

	want := strings.Count(string(data), " 17 127.0.0.1 ") + 2
	cmd := ns.Command("fwknopd", "-c", conf, "-a", access, "-d", cache, "--exit-parse-digest-cache", "-f", "-v")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fwknopd --exit-parse-digest-cache: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`entry count = (\d+)`).FindStringSubmatch(string(out))
	if m == nil || m[1] != strconv.Itoa(want) {
		t.Errorf("fwknopd read %v entries from sesame's cache, want %d:\n%s", m, want, out)
	}
}
