package server

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/gpgtest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationSignalsDuringStart: a SIGHUP or SIGUSR1 that arrives while the server is still
// reading its files (here: its GnuPG keys, through a GPG_EXE that waits for the test) does not
// kill it, as their default action would; once started it reloads and logs its counters.
func TestIntegrationSignalsDuringStart(t *testing.T) {
	nstest.Require(t, "gpg", "gpgconf", "nft")
	t.Parallel()
	home := gpgtest.NewHome(t, gpgtest.ECC, "server <srv@test>", "")
	dir := t.TempDir()
	marker, goFile := filepath.Join(dir, "reading"), filepath.Join(dir, "go")
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "gpg-wrapper")
	sesametest.WriteFile(t, wrapper, fmt.Sprintf("#!/bin/sh\ntouch %s\nwhile [ ! -e %s ]; do sleep 0.01; done\nexec %s \"$@\"\n",
		marker, goFile, gpg))
	if err := os.Chmod(wrapper, 0o700); err != nil {
		t.Fatal(err)
	}
	ns := nstest.New(t)
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	conf, access, logPath := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf"), filepath.Join(dir, "sesame.log")
	sesametest.WriteFile(t, conf, fmt.Sprintf("FWKNOP_RUN_DIR %s;\nFWKNOP_PID_FILE %s/sesame.pid;\nDIGEST_FILE %s/digest.cache;\n"+
		"ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n", run, run, run))
	sesametest.WriteFile(t, access, fmt.Sprintf("SOURCE ANY\nOPEN_PORTS tcp/22\nGPG_HOME_DIR %s\nGPG_DECRYPT_ID %s\n"+
		"GPG_ALLOW_NO_PW Y\nGPG_DISABLE_SIG Y\nGPG_EXE %s\n", home.Dir, home.ID, wrapper))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := ns.Command(nstest.Binary(t), "server", "-f", "-c", conf, "-a", access)
	cmd.Stdout, cmd.Stderr = logf, logf
	ns.Start(t, cmd)
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) || syscall.Kill(cmd.Process.Pid, 0) != nil {
				t.Fatalf("waiting for %s; log:\n%s", what, readLog())
			}
		}
	}
	waitFor("the server to run GPG_EXE", func() bool { _, err := os.Stat(marker); return err == nil })
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	sesametest.WriteFile(t, goFile, "")
	waitFor("the start", func() bool { return strings.Contains(readLog(), "sesame server started") })
	waitFor("the pending SIGHUP's reload", func() bool { return strings.Contains(readLog(), "SIGHUP: configuration reloaded") })
	waitFor("the pending SIGUSR1's stats", func() bool { return strings.Contains(readLog(), "msg=stats") })
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatalf("the server is gone: %v\n%s", err, readLog())
	}
}
