package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMD5Settings(t *testing.T) {
	dir := t.TempDir()
	conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	os.WriteFile(access, []byte("SOURCE ANY\nKEY secret\nHMAC_KEY hmacsecret\nSESAME_MD5 Y\n"), 0o600)

	// Without SESAME_MD5_LISTEN the stanza cannot be honoured: a startup error naming the fix.
	os.WriteFile(conf, []byte("FWKNOP_RUN_DIR "+dir+"\nENABLE_UDP_SERVER Y\n"), 0o600)
	_, err := loadSettings(&options{configFile: conf, accessFile: access})
	if err == nil || !strings.Contains(err.Error(), access+":1: stanza #1 has SESAME_MD5 Y but fwknopd.conf sets no SESAME_MD5_LISTEN") {
		t.Errorf("SESAME_MD5 without a listener: %v", err)
	}
	m, err := startMD5(context.Background(), &settings{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || m.svc != nil || m.Close() != nil {
		t.Errorf("no listener configured: %+v, %v", m, err)
	}

	os.WriteFile(conf, []byte("FWKNOP_RUN_DIR "+dir+"\nENABLE_UDP_SERVER Y\nSESAME_MD5_LISTEN 127.0.0.1:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n"), 0o600)
	s, err := loadSettings(&options{configFile: conf, accessFile: access})
	if err != nil || s.md5Listen != "127.0.0.1:2222" || s.md5Upstream != "127.0.0.1:22" || s.policy.MD5Port != 2222 ||
		!strings.Contains(portsList(s.guardPorts), "tcp/2222") {
		t.Fatalf("settings %+v, %v", s, err)
	}
	if !strings.Contains(s.dump, "tcp-md5 listener 127.0.0.1:2222 -> 127.0.0.1:22") || !strings.Contains(s.dump, "SESAME_MD5 Y") {
		t.Errorf("-D output:\n%s", s.dump)
	}
	s.md5Listen = "127.0.0.1:0" // any free port
	m, err = startMD5(context.Background(), s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || m.svc == nil {
		t.Fatalf("listener: %+v, %v", m, err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
