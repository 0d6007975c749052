package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/shield"
)

func TestKeySourcePrecedence(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "k")
	os.WriteFile(kf, []byte("any from-file\n10.0.0.0/8 ten\n"), 0o600)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	at := netip.MustParseAddrPort("192.0.2.1:22")
	ten := netip.MustParseAddrPort("10.1.1.1:22")

	for _, tc := range []struct {
		o    options
		env  map[string]string
		addr netip.AddrPort
		want string
	}{
		{options{keyFile: kf, key: "flag"}, map[string]string{EnvKey: "env"}, at, "from-file"},
		{options{keyFile: kf}, nil, ten, "ten"},
		{options{key: "flag"}, map[string]string{EnvKey: "env"}, at, "flag"},
		{options{}, map[string]string{EnvKey: "hex:656e76"}, at, "env"},
	} {
		ks, err := keySource(&tc.o, env(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		k, err := ks(tc.addr)
		if err != nil || string(k.Bytes()) != tc.want {
			t.Errorf("%+v env %v: %q, %v; want %q", tc.o, tc.env, k.Bytes(), err, tc.want)
		}
	}
	if _, err := keySource(&options{}, env(nil)); err == nil || !strings.Contains(err.Error(), EnvKey) {
		t.Errorf("no key: %v", err)
	}
	os.Chmod(kf, 0o644)
	if _, err := keySource(&options{keyFile: kf}, env(nil)); err == nil {
		t.Error("world-readable key file accepted")
	}
	os.WriteFile(kf, []byte("10.0.0.0/8 ten\n"), 0o600)
	os.Chmod(kf, 0o600)
	ks, _ := keySource(&options{keyFile: kf}, env(nil))
	if _, err := ks(at); err == nil {
		t.Error("key for an address outside the table")
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"onlyhost"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "HOST PORT") {
		t.Errorf("one argument: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	t.Setenv(EnvKey, "")
	if code := Main([]string{"h", "1"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "no key") {
		t.Errorf("no key: exit %d, %q", code, errb.String())
	}
	if code := Main([]string{"--help"}, nil, &out, &errb); code != 0 {
		t.Errorf("--help: exit %d", code)
	}
}

func TestKeySourceStanza(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, ".fwknoprc")
	os.WriteFile(rc, []byte("[default]\nSPA_SERVER_PORT 62201\n\n[box]\nSPA_SERVER 10.0.0.1\nSESAME_MD5_KEY hex:626f78\n\n[bare]\nSPA_SERVER 10.0.0.2\n"), 0o600)
	at := netip.MustParseAddrPort("192.0.2.1:22")

	ks, err := keySource(&options{keyStanza: "box", rcFile: rc}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ks(at); err != nil || string(k.Bytes()) != "box" {
		t.Errorf("key %q, %v; want box", k.Bytes(), err)
	}
	for name, want := range map[string]string{"bare": "has no SESAME_MD5_KEY line", "nosuch": "nosuch"} {
		if _, err := keySource(&options{keyStanza: name, rcFile: rc}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--stanza %s: %v, want an error mentioning %q", name, err, want)
		}
	}
	os.Chmod(rc, 0o644)
	if _, err := keySource(&options{keyStanza: "box", rcFile: rc}, func(string) string { return "" }); err == nil {
		t.Error("an rc file others can read was accepted")
	}
	if _, err := parse([]string{"--knock", "--stanza", "box", "h", "22"}, io.Discard); err == nil {
		t.Error("--knock with --stanza accepted")
	}
	if _, err := parse([]string{"--stanza", "box", "--rc-file", rc, "h", "22"}, io.Discard); err != nil {
		t.Errorf("--stanza with --rc-file: %v", err)
	}
}

func TestExplain(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err     error
		timeout time.Duration
		want    string
	}{
		{timeout, 300 * time.Millisecond, "no answer from 192.0.2.1:22 within 300ms (--timeout)"},
		{fmt.Errorf("knock: %w", context.DeadlineExceeded), time.Second, "no answer from 192.0.2.1:22 within 1s (--timeout)"},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, 0, "192.0.2.1:22 reset the connection"},
		{&shield.StdioError{Op: "write stdout", Err: syscall.EPIPE}, 0, "write stdout: broken pipe"},
		{timeout, 0, "dial tcp: i/o timeout"}, // not a dial: left alone
	} {
		got := explain(tc.err, "192.0.2.1:22", tc.timeout)
		if got == nil || !strings.HasPrefix(got.Error(), tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("explain(%v) = %v; want it to start with %q and wrap the error", tc.err, got, tc.want)
		}
	}
	if explain(nil, "x", time.Second) != nil {
		t.Error("explain(nil) != nil")
	}
}
