package gnupg

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesame-spa/sesame/internal/benchtest"
	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/gpgtest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

const (
	srvSPA  = nstest.SrvIP4 + ":62201"
	rijKey  = "fwknoptest"
	rijHMAC = "hmactest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gpgtest.CleanupShared()
	os.Exit(code)
}

// world holds the GnuPG homes (server and client, RSA-2048, no passphrase) and the keys the
// client's encoder uses.
type world struct {
	srv, cli   *gpgtest.Home
	to, signer *openpgp.Entity
	hmac       []byte // the GnuPG stanza's HMAC key, when it has one
}

func newWorld(t testing.TB) *world {
	t.Helper()
	h := gpgtest.SharedHomes(t, "bench", func(t testing.TB, h []*gpgtest.Home) {
		h[0].Import(t, h[1])
		h[0].LSign(t, h[1])
		h[1].Import(t, h[0])
	}, gpgtest.Spec{Kind: gpgtest.RSA, UID: "server <srv@test>"}, gpgtest.Spec{Kind: gpgtest.RSA, UID: "client <cli@test>"})
	w := &world{srv: h[0], cli: h[1], hmac: make([]byte, 32)}
	k := w.cli.Keys(t)
	w.to, w.signer = gpgtest.Keyring(k.Public).Public(w.srv.Fpr), k.Secret[0]
	if w.to == nil {
		t.Fatalf("no server key in the client's keyring")
	}
	if _, err := rand.Read(w.hmac); err != nil {
		t.Fatal(err)
	}
	return w
}

// access is the access.conf both servers get: the GnuPG stanza (with an HMAC key if
// withHMAC), then the Rijndael+HMAC stanza.
func (w *world) access(withHMAC bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SOURCE ANY\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\nGPG_ALLOW_NO_PW Y\nGPG_REMOTE_ID %s\nFW_ACCESS_TIMEOUT 600\n",
		w.srv.Dir, w.srv.ID, w.cli.ID)
	if withHMAC {
		fmt.Fprintf(&b, "HMAC_KEY_BASE64 %s\n", base64.StdEncoding.EncodeToString(w.hmac))
	}
	fmt.Fprintf(&b, "\nSOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 600\n", rijKey, rijHMAC)
	return b.String()
}

func message(allow string) spa.Message {
	return spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: allow + ",tcp/22"}
}

// gnupgPackets builds n valid signed GnuPG packets granting tcp/22 to allow(i), in parallel.
func (w *world) gnupgPackets(t testing.TB, n int, withHMAC bool, allow func(i int) string) [][]byte {
	t.Helper()
	var hk spa.Keys
	if withHMAC {
		hk.HMACKey = w.hmac
	}
	out := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := g; i < n; i += 2 {
				m := message(allow(i))
				s, err := gnupg.Encode(&m, hk, w.to, w.signer, rand.Reader, time.Now)
				out[i], errs[i] = []byte(s), err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func rijndaelPackets(t testing.TB, n int, allow func(i int) string) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		m := message(allow(i))
		s, err := spa.Encode(&m, spa.Keys{Key: []byte(rijKey), HMACKey: []byte(rijHMAC)}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = []byte(s)
	}
	return out
}

// forged builds n forged GnuPG packets: a real unsigned packet to the server's key (no HMAC)
// whose RSA value (the session-key packet's 256 bytes after its 15-byte header) is replaced
// by random bytes, so every forgery differs. A server that decrypts it spends one RSA
// private-key operation before the padding check fails; the rest parses as real.
func (w *world) forged(t testing.TB, n int) [][]byte {
	t.Helper()
	m := message(nstest.CliIP4)
	s, err := gnupg.Encode(&m, spa.Keys{}, w.to, nil, rand.Reader, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight("hQ"+s, "="))
	if err != nil || len(raw) < 15+256 || raw[0] != 0x85 || raw[3] != 3 || (int(raw[13])<<8|int(raw[14])+7)/8 != 256 {
		t.Fatalf("unexpected session-key packet (%v): % x", err, raw[:min(len(raw), 16)])
	}
	out := make([][]byte, n)
	for i := range out {
		f := append([]byte(nil), raw...)
		if _, err := rand.Read(f[15 : 15+256]); err != nil {
			t.Fatal(err)
		}
		// A 2047-bit value: below the modulus, so the server does the whole RSA operation.
		f[13], f[14], f[15] = 0x07, 0xff, 0x40|f[15]&0x3f
		out[i] = []byte(base64.RawStdEncoding.EncodeToString(f)[2:])
	}
	t.Logf("forged GnuPG packets: %d characters", len(out[0]))
	return out
}

// target is one server under test with its client namespace.
type target struct {
	name      string
	srv, cli  *nstest.NS
	pid       int
	log       string
	grantLine string // the log line of a grant
	allowAt   string // what precedes the allowed address in it
	cpu       func() time.Duration
	ses       *sesametest.Server // sesame only
	home      string             // fwknopd only: the GnuPG home of its key
}

func (g *target) grants(prefix string) int {
	return benchtest.CountLines(g.log, g.grantLine, g.allowAt+prefix)
}

func startSesame(t testing.TB, w *world, withHMAC bool) *target {
	srv, cli := nstest.Pair(t)
	s := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: w.access(withHMAC), StartTimeout: 30 * time.Second})
	return &target{name: "sesame", srv: srv, cli: cli, pid: s.PID, log: s.LogPath, grantLine: "access granted",
		allowAt: "allow=", cpu: func() time.Duration { return benchtest.SchedCPU(t, s.PID) }, ses: s}
}

func startFwknopd(t testing.TB, w *world, withHMAC bool) *target {
	srv, cli := nstest.Pair(t)
	f := fwknoptest.StartServer(t, srv, fwknoptest.ServerOptions{Verbose: 1, Access: w.access(withHMAC), StartTimeout: 30 * time.Second})
	home := w.srv.Dir
	// fwknopd's CPU: its own, its reaped children's (gpg, iptables) and the gpg-agent's that
	// holds the server's key (a daemon, not its child).
	cpu := func() time.Duration {
		c := benchtest.StatCPU(t, f.PID, true)
		for _, p := range agentPIDs(home) {
			c += benchtest.StatCPU(t, p, false)
		}
		return c
	}
	return &target{name: "fwknopd", srv: srv, cli: cli, pid: f.PID, log: f.LogPath, grantLine: "Added access rule",
		allowAt: "for ", cpu: cpu, home: home}
}

// knockRate offers n distinct valid GnuPG packets at once and returns grants per second.
func knockRate(t testing.TB, w *world, g *target, n int) float64 {
	pk := w.gnupgPackets(t, n, true, func(i int) string { return fmt.Sprintf("10.100.%d.%d", i/250, i%250+1) })
	start := time.Now()
	benchtest.Blast(t, g.cli, srvSPA, pk, 0)
	got, last := benchtest.WaitStable(func() int { return g.grants("10.100.") }, n, 5*time.Second, 90*time.Second)
	el := last.Sub(start)
	t.Logf("%s: %d of %d GnuPG knocks granted in %v", g.name, got, n, el)
	if got == 0 {
		return 0
	}
	return float64(got) / el.Seconds()
}

// forgedSesame: forged packets handled per CPU-second by sesame, measured on a saturated
// drain (the server is stopped while its socket buffer fills, then resumed), so the figure is
// the server's cost, not the sender's.
func forgedSesame(t testing.TB, g *target, junk [][]byte) float64 {
	var handled int
	var cpu time.Duration
	for range benchtest.EnvInt("BENCH_FORGED_ROUNDS", 4) {
		p0, c0 := benchtest.Packets(t, g.ses), g.cpu()
		benchtest.Signal(t, g.pid, 19) // SIGSTOP
		benchtest.Blast(t, g.cli, srvSPA, junk, 0)
		benchtest.Signal(t, g.pid, 18) // SIGCONT
		for prev := time.Duration(-1); ; {
			time.Sleep(50 * time.Millisecond)
			c := g.cpu()
			if c == prev {
				break
			}
			prev = c
		}
		p1, c1 := benchtest.Packets(t, g.ses), g.cpu()
		handled += p1 - p0
		cpu += c1 - c0
	}
	t.Logf("sesame: %d forged GnuPG packets handled with %v CPU", handled, cpu)
	return float64(handled) / cpu.Seconds()
}

// fwknopdPacketLine is the line fwknopd logs once per datagram it reads (-v); its other
// per-packet lines repeat per stanza.
const fwknopdPacketLine = "Got UDP datagram"

// forgedFwknopd: fwknopd's small socket buffer cannot be pre-filled usefully, so it gets a
// flood for d and the packets it logged are divided by the CPU it spent (the backlog included).
func forgedFwknopd(t testing.TB, g *target, junk [][]byte, d time.Duration) float64 {
	n0, c0 := benchtest.CountLines(g.log, fwknopdPacketLine), g.cpu()
	sent := benchtest.FloodFor(t, g.cli, []string{nstest.CliIP4}, srvSPA, junk, d)
	waitIdle(g.cpu, 30*time.Second)
	n1, c1 := benchtest.CountLines(g.log, fwknopdPacketLine), g.cpu()
	t.Logf("fwknopd: %d forged GnuPG packets sent in %v, %d handled with %v CPU (with %d gpg-agent)", sent, d, n1-n0, c1-c0,
		len(agentPIDs(g.home)))
	if os.Getenv("BENCH_DEBUG") != "" {
		b, _ := os.ReadFile(g.log)
		l := strings.Split(string(b), "\n")
		t.Logf("fwknopd log tail:\n%s", strings.Join(l[max(0, len(l)-30):], "\n"))
	}
	if c1 <= c0 {
		return 0
	}
	return float64(n1-n0) / (c1 - c0).Seconds()
}

// control checks, with no flood, that g grants one valid Rijndael knock and one valid GnuPG
// knock from the addresses underFlood uses, so that a flood's losses are the flood's.
func control(t testing.TB, w *world, g *target, withHMAC bool) {
	rp, gp := "10.109.1.", "10.109.2."
	if !withHMAC {
		rp, gp = "10.109.3.", "10.109.4."
	}
	sendFrom(t, g.cli, "10.99.0.10", srvSPA, rijndaelPackets(t, 1, func(int) string { return rp + "1" })[0])
	sendFrom(t, g.cli, "10.99.0.11", srvSPA, w.gnupgPackets(t, 1, withHMAC, func(int) string { return gp + "1" })[0])
	if n, _ := benchtest.WaitStable(func() int { return g.grants(rp) + g.grants(gp) }, 2, 10*time.Second, 10*time.Second); n != 2 {
		t.Fatalf("%s: %d of 2 control knocks granted without a flood", g.name, n)
	}
}

// floodResult is what a flood left of the valid knocks.
type floodResult struct {
	rijndael, gnupg float64 // percent honoured
	sent            int     // forged packets sent
}

// underFlood floods g with forged packets from nsrc source addresses for d and meanwhile
// sends 50 valid Rijndael+HMAC and 20 valid GnuPG knocks, evenly spread, from 20 other
// addresses of the client; phase makes the allowed addresses distinct per call.
func underFlood(t testing.TB, w *world, g *target, withHMAC bool, junk [][]byte, nsrc, phase int, d time.Duration) floodResult {
	rp, gp := fmt.Sprintf("10.%d.1.", 110+phase), fmt.Sprintf("10.%d.2.", 110+phase)
	rij := rijndaelPackets(t, 50, func(i int) string { return fmt.Sprintf("%s%d", rp, i+1) })
	gpg := w.gnupgPackets(t, 20, withHMAC, func(i int) string { return fmt.Sprintf("%s%d", gp, i+1) })
	srcs := []string{nstest.CliIP4}
	if nsrc > 1 {
		srcs = nil
		for i := range nsrc {
			srcs = append(srcs, fmt.Sprintf("10.99.0.%d", 100+i))
		}
	}
	r0, g0 := g.grants(rp), g.grants(gp)
	var sent int
	done := make(chan struct{})
	go func() { defer close(done); sent = benchtest.FloodFor(t, g.cli, srcs, srvSPA, junk, d) }()
	// 70 knocks over the flood, two of every seven GnuPG.
	start := time.Now()
	ri, gi := 0, 0
	for k := range 70 {
		time.Sleep(time.Until(start.Add(time.Duration(k)*d/70 + d/140)))
		if k%7 == 3 || k%7 == 6 {
			sendFrom(t, g.cli, fmt.Sprintf("10.99.0.%d", 10+gi), srvSPA, gpg[gi])
			gi++
		} else {
			sendFrom(t, g.cli, fmt.Sprintf("10.99.0.%d", 10+ri%20), srvSPA, rij[ri])
			ri++
		}
	}
	<-done
	waitIdle(g.cpu, 30*time.Second)
	r, gg := g.grants(rp)-r0, g.grants(gp)-g0
	t.Logf("%s, GnuPG HMAC %v, flood from %d sources: %d forged sent in %v (%.0f/s); honoured %d/50 Rijndael, %d/20 GnuPG",
		g.name, withHMAC, len(srcs), sent, d, float64(sent)/d.Seconds(), r, gg)
	return floodResult{rijndael: 100 * float64(r) / 50, gnupg: 100 * float64(gg) / 20, sent: sent}
}

// addAddrs adds the client's extra source addresses: 10.99.0.10-29 for the valid knocks and
// 10.99.0.100 on for a multi-source flood (at most 150 sources).
func addAddrs(t testing.TB, cli *nstest.NS, nsrc int) {
	for i := 10; i < 30; i++ {
		cli.Run(t, "ip", "addr", "add", fmt.Sprintf("10.99.0.%d/24", i), "dev", cli.Ifc)
	}
	for i := 0; nsrc > 1 && i < nsrc; i++ {
		cli.Run(t, "ip", "addr", "add", fmt.Sprintf("10.99.0.%d/24", 100+i), "dev", cli.Ifc)
	}
}

// row is one line of the result table.
type row struct {
	metric          string
	unit            string  // benchmark metric unit (prefixed with the server's name)
	sesame, fwknopd float64 // -1: not measured
}

// BenchmarkGnuPGVsFwknopd runs the whole comparison once (run it with -benchtime 1x, as
// bench/gnupg.sh does), prints the table and reports every figure as a metric named
// SERVER-UNIT. Knobs: BENCH_SESAME_KNOCKS (1000), BENCH_FWKNOPD_KNOCKS (40),
// BENCH_FORGED_ROUNDS (4), BENCH_FLOOD_SECONDS (5), BENCH_FLOOD_SOURCES (64: the spoofed-source
// flood, sesame only; 0 skips it), BENCH_DEBUG (non-empty: log fwknopd's last lines after the
// forged-packet phase).
func BenchmarkGnuPGVsFwknopd(b *testing.B) {
	nstest.Require(b, "gpg", "gpgconf", "fwknopd", "iptables", "nft")
	w := newWorld(b)
	flood := time.Duration(benchtest.EnvInt("BENCH_FLOOD_SECONDS", 5)) * time.Second
	nsrc := min(benchtest.EnvInt("BENCH_FLOOD_SOURCES", 64), 150)
	junk := w.forged(b, 256)
	var rows []row
	phase := 0
	for _, withHMAC := range []bool{true, false} {
		tag := "gpg-hmac"
		if !withHMAC {
			tag = "gpg-nohmac"
		}
		ses, fwk := startSesame(b, w, withHMAC), startFwknopd(b, w, withHMAC)
		addAddrs(b, ses.cli, nsrc)
		addAddrs(b, fwk.cli, 1)
		if withHMAC {
			rows = append(rows, row{"GnuPG knocks granted / s (" + tag + ")", "knocks/s",
				knockRate(b, w, ses, benchtest.EnvInt("BENCH_SESAME_KNOCKS", 1000)), knockRate(b, w, fwk, benchtest.EnvInt("BENCH_FWKNOPD_KNOCKS", 40))})
		}
		control(b, w, ses, withHMAC)
		control(b, w, fwk, withHMAC)
		burst := make([][]byte, 3000)
		for i := range burst {
			burst[i] = junk[i%len(junk)]
		}
		rows = append(rows, row{"forged GnuPG / CPU-s (" + tag + ")", "forged/cpu-s-" + tag,
			forgedSesame(b, ses, burst), forgedFwknopd(b, fwk, junk, 3*time.Second)})
		fs := underFlood(b, w, ses, withHMAC, junk, 1, phase, flood)
		ff := underFlood(b, w, fwk, withHMAC, junk, 1, phase, flood)
		phase++
		rows = append(rows,
			row{"flood: Rijndael knocks honoured (" + tag + ")", "rijndael-honoured-%-" + tag, fs.rijndael, ff.rijndael},
			row{"flood: GnuPG knocks honoured (" + tag + ")", "gnupg-honoured-%-" + tag, fs.gnupg, ff.gnupg},
			row{"flood: forged sent / s (" + tag + ")", "flood-pkt/s-" + tag, float64(fs.sent) / flood.Seconds(), float64(ff.sent) / flood.Seconds()})
		if nsrc > 1 {
			fm := underFlood(b, w, ses, withHMAC, junk, nsrc, phase, flood)
			phase++
			tm := fmt.Sprintf("%s, %d srcs", tag, nsrc)
			rows = append(rows,
				row{"flood: Rijndael knocks honoured (" + tm + ")", fmt.Sprintf("rijndael-honoured-%%-%s-%dsrc", tag, nsrc), fm.rijndael, -1},
				row{"flood: GnuPG knocks honoured (" + tm + ")", fmt.Sprintf("gnupg-honoured-%%-%s-%dsrc", tag, nsrc), fm.gnupg, -1})
		}
	}
	printTable(rows)
	for _, r := range rows {
		b.ReportMetric(r.sesame, "sesame-"+r.unit)
		if r.fwknopd >= 0 {
			b.ReportMetric(r.fwknopd, "fwknopd-"+r.unit)
		}
	}
}

func printTable(rows []row) {
	fmt.Printf("\n%-52s %12s %12s %9s\n", "metric (higher is better)", "sesame", "fwknopd", "ratio")
	for _, r := range rows {
		fw, ratio := "not run", "-"
		if r.fwknopd >= 0 {
			fw = fmt.Sprintf("%.1f", r.fwknopd)
		}
		if r.fwknopd > 0 {
			ratio = fmt.Sprintf("%.1fx", r.sesame/r.fwknopd)
		}
		fmt.Printf("%-52s %12.1f %12s %9s\n", r.metric, r.sesame, fw, ratio)
	}
	fmt.Println("(ratio = sesame / fwknopd; \"-\" where fwknopd scored 0 or was not run)")
}
