package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/redistest"
)

// An ACL user limited to sesame's keys can do everything the Fleet does; a wrong password
// or no user fails (and Closed refuses).
func TestACLAuth(t *testing.T) {
	r := newRedis(t, "--user", "default", "off", "--user", "gw", "on", ">s3cret", "~sesame:*", "&*", "+@all")
	group := groupName(t)
	ctx := context.Background()
	url := fmt.Sprintf("redis://gw:s3cret@127.0.0.1:%d", r.Port)
	a := newGateway(t, url, group)
	b := newGateway(t, url, group)
	if fresh, err := a.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || !fresh {
		t.Fatalf("ACL user: %v %v", fresh, err)
	}
	if fresh, err := b.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || fresh {
		t.Fatalf("ACL user, replay: %v %v", fresh, err)
	}
	rb := b.run(t)
	waitReading(t, b)
	es := grants(time.Now(), 1)
	if err := a.Publish(ctx, es); err != nil {
		t.Fatal(err)
	}
	if ev := rb.next(t); !sameEntries(ev.entries, es) {
		t.Errorf("applied %v", ev.entries)
	}
	for _, bad := range []string{fmt.Sprintf("redis://gw:wrong@127.0.0.1:%d", r.Port), r.URL()} {
		g := newGateway(t, bad, group)
		if _, err := g.CheckAndAdd(ctx, "other", time.Now(), time.Minute); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want an error", bad, err)
		}
		if st := g.Status(); st.LastError == "" || strings.Contains(st.LastError, "wrong") {
			t.Errorf("status error %q (must not show the password)", st.LastError)
		}
	}
}

// rediss:// against a redis-server with --tls-port and a CA made here: with the CA and a client
// certificate it works; with the system roots it fails.
func TestTLS(t *testing.T) {
	needRedis(t)
	dir := t.TempDir()
	ca, caKey := makeCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	makeLeaf(t, dir, "server", ca, caKey, true)
	makeLeaf(t, dir, "client", ca, caKey, false)
	port := redistest.Start(t, redistest.Options{TLS: &redistest.TLSFiles{Cert: filepath.Join(dir, "server.pem"),
		Key: filepath.Join(dir, "server.key"), CA: filepath.Join(dir, "ca.pem")}}).Port
	cfg, err := LoadTLS(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("rediss://127.0.0.1:%d", port)
	group := groupName(t)
	ctx := context.Background()
	a := newGateway(t, url, group, func(c *Config) { c.TLS = cfg })
	if fresh, err := a.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || !fresh {
		t.Fatalf("TLS: %v %v", fresh, err)
	}
	if err := a.Publish(ctx, grants(time.Now(), 1)); err != nil {
		t.Fatal(err)
	}
	if live, err := a.Live(ctx); err != nil || len(live) != 1 {
		t.Errorf("Live over TLS: %v %v", live, err)
	}
	noCA := newGateway(t, url, group)
	if err := noCA.Ping(ctx); err == nil {
		t.Error("TLS without the CA: no error")
	}
	if _, err := New(Config{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), Key: testKey, TLS: cfg}); err == nil {
		t.Error("TLS settings with redis:// accepted")
	}
}

func makeCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sesame test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// makeLeaf writes dir/name.pem and dir/name.key (mode 0600), signed by ca.
func makeLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", kder)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A redis+sentinel URL finds the master through a sentinel.
func TestSentinel(t *testing.T) {
	master := newRedis(t, "--requirepass", "pw")
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor fleetmaster 127.0.0.1 %d 1\nsentinel auth-pass fleetmaster pw\n", master.Port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := redistest.Start(t, redistest.Options{Sentinel: conf})
	group := groupName(t)
	ctx := context.Background()
	url := fmt.Sprintf("redis+sentinel://:pw@127.0.0.1:%d/fleetmaster", s.Port)
	a := newGateway(t, url, group)
	b := newGateway(t, url, group)
	if fresh, err := a.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || !fresh {
		t.Fatalf("through sentinel: %v %v", fresh, err)
	}
	if fresh, err := b.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || fresh {
		t.Fatalf("through sentinel, replay: %v %v", fresh, err)
	}
	mc := client(t, master)
	if err := mc.Do(ctx, "auth", "pw").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := mc.Exists(ctx, a.replayName(digest1)).Result(); err != nil || n != 1 {
		t.Errorf("digest on the master: %v %v", n, err)
	}
}
