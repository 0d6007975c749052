package md5grant

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/tcpmd5"
)

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestIntegrationStanzaKeyLimit: with the real kernel, a stanza at its key limit gets no
// key for a further address (which then cannot connect), another stanza still can, and
// the near-full warning comes once the live keys reach 90 % of the table.
func TestIntegrationStanzaKeyLimit(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	// The relay's upstream dials run on goroutines outside ns: the echo server is on the
	// host's loopback.
	up := sesametest.Listen(t, nil, "127.0.0.1:0", sesametest.Echo).String()
	logs := &syncLog{}
	var s *Service
	if err := ns.Do(t, func() (err error) {
		s, err = Start(context.Background(), Config{Listen: "127.0.0.1:0", Upstream: up, MaxKeysPerStanza: 2, KeyTableSize: 4,
			Log: slog.New(slog.NewTextHandler(logs, nil))})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", logs.String())
		}
	})
	addr := s.Addr().String()
	keyA, _ := Derive(keysA)
	keyB, _ := Derive(keysB)
	stA := &fwconf.Stanza{Num: 1, Keys: keysA, MD5: true}
	stB := &fwconf.Stanza{Num: 2, Keys: keysB, MD5: true}
	grant := func(st *fwconf.Stanza, ips ...string) error {
		var gs []firewall.Grant
		for _, ip := range ips {
			gs = append(gs, firewall.Grant{Src: netip.MustParseAddr(ip), Proto: 6, Port: 2222, Timeout: time.Minute})
		}
		return s.OnGrant(st, gs)
	}
	connects := func(local string, key tcpmd5.Key) bool {
		var err error
		ns.Do(t, func() error { err = talk(addr, local, key); return nil })
		return err == nil
	}

	if err := grant(stA, "127.0.0.2", "127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	if err := grant(stA, "127.0.0.4"); !errors.Is(err, ErrStanzaFull) {
		t.Errorf("third address for a stanza limited to 2: %v, want ErrStanzaFull", err)
	}
	if !connects("127.0.0.2", keyA) {
		t.Error("granted address cannot connect")
	}
	if connects("127.0.0.4", keyA) {
		t.Error("the address refused by the stanza limit connected with the stanza's key")
	}
	if strings.Contains(logs.String(), "near full") {
		t.Error("near-full warning at 2 of 4 keys")
	}
	if err := grant(stB, "127.0.0.5", "127.0.0.6"); err != nil {
		t.Errorf("another stanza: %v", err)
	}
	if !connects("127.0.0.6", keyB) {
		t.Error("second stanza's address cannot connect")
	}
	if n := strings.Count(logs.String(), "md5 key table near full"); n != 1 {
		t.Errorf("near-full warning logged %d times at 4 of 4 keys, want once", n)
	}
}

// TestIntegrationTableSizeEstimate checks the key-table estimate against the kernel: in a
// namespace with net.core.optmem_max at 16 KiB, the estimate is what one listener holds.
func TestIntegrationTableSizeEstimate(t *testing.T) {
	nstest.Require(t, "sysctl")
	ns := nstest.New(t)
	ns.Run(t, "sysctl", "-qw", "net.core.optmem_max=16384")
	var est, fit int
	if err := ns.Do(t, func() error {
		est = estimateTableSize()
		l, err := tcpmd5.Listen(context.Background(), "tcp", "[::]:0", nil)
		if err != nil {
			return err
		}
		defer l.Close()
		k, _ := tcpmd5.ParseKey("k")
		for ; fit < 5000; fit++ {
			if err := l.SetKey(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(fit >> 8), byte(fit)}), 32), k); err != nil {
				if !errors.Is(err, tcpmd5.ErrTooManyKeys) {
					return err
				}
				break
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("estimate %d, kernel took %d grant keys", est, fit)
	if est != fit {
		t.Errorf("estimated %d grant keys at optmem_max 16384, the kernel took %d", est, fit)
	}
}
