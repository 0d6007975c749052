package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/keeper"
	"github.com/sesame-spa/sesame/internal/ledger"
)

// fleetFiles writes fwknopd.conf (fleet lines after a UDP-mode base) and access.conf into a
// temporary directory, with a valid fleet key file at dir/fleet.key.
func fleetFiles(t *testing.T, fleetLines string) (conf, access, dir string) {
	t.Helper()
	dir = t.TempDir()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if err := os.WriteFile(filepath.Join(dir, "fleet.key"), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, access = filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	os.WriteFile(conf, []byte("FWKNOP_RUN_DIR "+dir+"\nENABLE_UDP_SERVER Y\n"+strings.ReplaceAll(fleetLines, "DIR", dir)), 0o600)
	os.WriteFile(access, []byte("SOURCE 10.0.0.0/8\nKEY secret\nHMAC_KEY hmacsecret\nOPEN_PORTS tcp/22\n"), 0o600)
	return conf, access, dir
}

func TestFleetConfig(t *testing.T) {
	conf, access, _ := fleetFiles(t, "SESAME_FLEET_REDIS redis://gw:s3cret@10.0.0.9:6379/1\nSESAME_FLEET_KEY_FILE DIR/fleet.key\n"+
		"SESAME_FLEET_GROUP edge\nSESAME_FLEET_ON_ERROR local\nSESAME_FLEET_TIMEOUT 300\nSESAME_FLEET_NAME gw-a\n")
	code, out, errOut := run("-c", conf, "-a", access, "--exit-parse-config")
	if code != 0 {
		t.Fatalf("--exit-parse-config: %d %q %q", code, out, errOut)
	}
	s, err := loadSettings(&options{configFile: conf, accessFile: access})
	if err != nil {
		t.Fatal(err)
	}
	f := s.fleet
	if f == nil || f.URL != "redis://gw:s3cret@10.0.0.9:6379/1" || f.Group != "edge" || f.OnError.String() != "local" ||
		f.Timeout != 300*time.Millisecond || f.Gateway != "gw-a" || len(f.Key) != 32 || f.TLS != nil {
		t.Errorf("fleet config %+v", f)
	}
	code, out, _ = run("-c", conf, "-a", access, "-D", "-v")
	if code != 0 || !strings.Contains(out, "# effective: fleet redis=redis://gw:xxxxx@10.0.0.9:6379/1 group=edge on-error=local") ||
		!strings.Contains(out, "SESAME_FLEET_REDIS           =  'redis://gw:xxxxx@10.0.0.9:6379/1'") || strings.Contains(out, "s3cret") {
		t.Errorf("-D: %d\n%s", code, out)
	}

	// Without SESAME_FLEET_REDIS nothing changes.
	conf, access, _ = fleetFiles(t, "")
	if s, err := loadSettings(&options{configFile: conf, accessFile: access}); err != nil || s.fleet != nil {
		t.Errorf("no fleet: %v %+v", err, s.fleet)
	}
}

// The fleet's files are checked at start (and by --exit-parse-config): every error names
// file, line and variable, all in one run, and never shows the Redis password.
func TestFleetConfigErrors(t *testing.T) {
	conf, access, dir := fleetFiles(t, "SESAME_FLEET_REDIS rediss://gw:s3cret@10.0.0.9\nSESAME_FLEET_KEY_FILE DIR/loose.key\n"+
		"SESAME_FLEET_TLS_CA DIR/missing-ca.pem\n")
	os.WriteFile(filepath.Join(dir, "loose.key"), []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o644)
	code, _, errOut := run("-c", conf, "-a", access, "--exit-parse-config")
	if code == 0 {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		conf + ":4: SESAME_FLEET_KEY_FILE: key file " + dir + "/loose.key (mode 0644): key file is accessible by group or others (chmod 600 it)",
		conf + ":5: SESAME_FLEET_TLS_CA: fleet: CA file: open " + dir + "/missing-ca.pem: no such file or directory",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("errors lack %q:\n%s", want, errOut)
		}
	}
	for _, tc := range []struct{ lines, want string }{
		{"SESAME_FLEET_REDIS redis+sentinel://10.0.0.9/\nSESAME_FLEET_KEY_FILE DIR/fleet.key\n",
			":3: SESAME_FLEET_REDIS: fleet: sentinel URL: path"},
		{"SESAME_FLEET_REDIS redis://10.0.0.9\nSESAME_FLEET_KEY_FILE DIR/none.key\n", ":4: SESAME_FLEET_KEY_FILE: key file: "},
		{"SESAME_FLEET_REDIS redis://gw:s3cret@10.0.0.9\n", ":3: SESAME_FLEET_REDIS: is set but SESAME_FLEET_KEY_FILE is not"},
	} {
		conf, access, _ := fleetFiles(t, tc.lines)
		code, _, errOut := run("-c", conf, "-a", access, "--exit-parse-config")
		if code == 0 || !strings.Contains(errOut, conf+tc.want) || strings.Contains(errOut, "s3cret") {
			t.Errorf("%q: %d %q, want %q", tc.lines, code, errOut, tc.want)
		}
	}
}

// The applier grants what other gateways publish until its absolute expiry (skipping the
// expired and the invalid), revokes keys, and revokes everything.
func TestFleetApplier(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	fw := &firewall.Fake{Now: clock}
	led, err := ledger.Open("", clock)
	if err != nil {
		t.Fatal(err)
	}
	k := keeper.New(keeper.Config{Backend: fw, Ledger: led, Table: "sesame", Now: clock, CheckEvery: time.Hour})
	ctx := context.Background()
	if _, _, err := k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	a := &fleetApplier{ctx: ctx, k: k, log: slog.New(slog.DiscardHandler), now: clock}
	cli, cli2 := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00::7")
	entry := func(src netip.Addr, proto uint8, port uint16, left time.Duration) ledger.Entry {
		return ledger.Entry{Key: ledger.Key{Src: src, Proto: proto, Port: port}, Expires: now.Add(left), Stanza: 2}
	}
	err = a.Apply([]ledger.Entry{entry(cli, 6, 22, 30*time.Second), entry(cli2, 6, 22, 10*time.Second),
		entry(cli, 6, 443, 500*time.Microsecond), entry(cli, 1, 22, time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	es, _ := fw.List(ctx)
	if len(es) != 2 || es[0].Src != cli || es[0].Expires != 30*time.Second || es[1].Src != cli2 {
		t.Fatalf("granted %+v, want 10.0.0.7 and fd00::7 tcp/22 only, the first with 30 s", es)
	}
	if live := led.Live(); len(live) != 2 || live[0].Stanza != 2 || !live[1].Expires.Equal(now.Add(30*time.Second)) {
		t.Fatalf("ledger %+v, want both with stanza 2, the later expiring at now+30s", live)
	}
	if err := a.Revoke([]ledger.Key{{Src: cli, Proto: 6, Port: 22}}); err != nil {
		t.Fatal(err)
	}
	if es, _ := fw.List(ctx); len(es) != 1 || es[0].Src != cli2 || led.Len() != 1 {
		t.Fatalf("after Revoke: %+v, ledger %d", es, led.Len())
	}
	if err := a.RevokeAll(); err != nil {
		t.Fatal(err)
	}
	if es, _ := fw.List(ctx); len(es) != 0 || led.Len() != 0 {
		t.Fatalf("after RevokeAll: %+v, ledger %d", es, led.Len())
	}
}

// OnGrant never blocks the packet path: when the publish queue is full, grants are dropped,
// counted and logged.
func TestFleetOnGrantNeverBlocks(t *testing.T) {
	var logged strings.Builder
	l := &fleetLink{queue: make(chan []ledger.Entry, 1), log: slog.New(slog.NewTextHandler(&logged, nil))}
	st := &fwconf.Stanza{Num: 3}
	g := firewall.Grant{Src: netip.MustParseAddr("10.0.0.7"), Proto: 6, Port: 22, Timeout: 30 * time.Second, Stanza: 3}
	before := time.Now()
	for range 3 {
		if err := l.OnGrant(st, []firewall.Grant{g}); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.dropped.Load(); n != 2 {
		t.Errorf("dropped %d, want 2", n)
	}
	if n := strings.Count(logged.String(), "publish queue full"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logged.String())
	}
	es := <-l.queue
	if len(es) != 1 || es[0].Src != g.Src || es[0].Stanza != 3 || es[0].Expires.Before(before.Add(g.Timeout)) ||
		es[0].Expires.After(time.Now().Add(g.Timeout)) {
		t.Errorf("queued %+v", es)
	}
	var nilLink *fleetLink // no fleet: every method is a no-op
	if err := nilLink.OnGrant(st, []firewall.Grant{g}); err != nil || nilLink.stats() != nil || nilLink.revokeAll(context.Background()) != nil {
		t.Error("nil fleetLink is not a no-op")
	}
}

// NAT grants stay on the gateway that got the knock: OnGrant publishes the access grants only,
// and nothing at all for a knock that made NAT grants alone.
func TestFleetOnGrantAccessOnly(t *testing.T) {
	l := &fleetLink{queue: make(chan []ledger.Entry, 2), log: slog.New(slog.DiscardHandler)}
	st := &fwconf.Stanza{Num: 1}
	src := netip.MustParseAddr("10.0.0.7")
	acc := firewall.Grant{Src: src, Proto: 6, Port: 22, Timeout: 30 * time.Second}
	fwd := firewall.Grant{Src: src, Proto: 6, Port: 2222, Timeout: 30 * time.Second, Kind: firewall.Forward,
		NATAddr: netip.MustParseAddr("10.50.0.5"), NATPort: 22}
	lnat := fwd
	lnat.Kind, lnat.NATAddr = firewall.LocalNAT, netip.MustParseAddr("10.0.0.1")
	if err := l.OnGrant(st, []firewall.Grant{fwd, lnat}); err != nil {
		t.Fatal(err)
	}
	if err := l.OnGrant(st, []firewall.Grant{fwd, acc, lnat}); err != nil {
		t.Fatal(err)
	}
	if n := len(l.queue); n != 1 {
		t.Fatalf("%d batches queued, want 1 (NAT-only knocks publish nothing)", n)
	}
	es := <-l.queue
	if len(es) != 1 || es[0].Key != (ledger.Key{Src: src, Proto: 6, Port: 22}) {
		t.Errorf("queued %+v, want the access grant only", es)
	}
}

// writeCerts writes a CA (ca.pem) and a client certificate signed by it (client.pem,
// client.key, mode 600) into dir.
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "gw"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("client.pem", "CERTIFICATE", der)
	write("client.key", "EC PRIVATE KEY", keyDER)
}

// SESAME_FLEET_TLS_* build the TLS configuration of a rediss URL; a client key readable by
// others is refused, naming SESAME_FLEET_TLS_KEY.
func TestFleetTLSConfig(t *testing.T) {
	lines := "SESAME_FLEET_REDIS rediss://gw:pw@10.0.0.9:6380\nSESAME_FLEET_KEY_FILE DIR/fleet.key\n" +
		"SESAME_FLEET_TLS_CA DIR/ca.pem\nSESAME_FLEET_TLS_CERT DIR/client.pem\nSESAME_FLEET_TLS_KEY DIR/client.key\n"
	conf, access, dir := fleetFiles(t, lines)
	writeCerts(t, dir)
	s, err := loadSettings(&options{configFile: conf, accessFile: access})
	if err != nil {
		t.Fatal(err)
	}
	if tc := s.fleet.TLS; tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Fatalf("TLS config %+v", tc)
	}
	os.Chmod(filepath.Join(dir, "client.key"), 0o640)
	code, _, errOut := run("-c", conf, "-a", access, "--exit-parse-config")
	if want := conf + ":7: SESAME_FLEET_TLS_KEY: fleet: key file " + dir + "/client.key (mode 0640)"; code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("loose client key: %d %q, want %q", code, errOut, want)
	}
}
