package md5grant

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

func BenchmarkDerive(b *testing.B) {
	for b.Loop() {
		if _, err := Derive(keysA); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOnGrant is the server-side cost of one MD5 grant: derive the key and set it on
// the live listener (one setsockopt), cycling over 500 addresses (the socket holds about
// 960 keys with the default optmem_max).
func BenchmarkOnGrant(b *testing.B) {
	s, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", Upstream: "127.0.0.1:9"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	st := &fwconf.Stanza{Keys: keysA, MD5: true}
	i := 0
	for b.Loop() {
		i = (i + 1) % 500
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if err := s.OnGrant(st, []firewall.Grant{{Src: a, Proto: 6, Port: 22, Timeout: time.Minute}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIntegrationKnockConnect times "sesame connect --knock" from process start to the
// echoed line, each time on a fresh grant (the previous one has expired), over IPv4 and
// IPv6. Run it with a fixed count: go test -bench KnockConnect -benchtime 10x.
func BenchmarkIntegrationKnockConnect(b *testing.B) {
	nstest.Require(b, "nft")
	srv, cli := nstest.New(b), nstest.New(b)
	keys := spa.Keys{Key: []byte("alice-rijndael-key"), HMACKey: []byte("alice-hmac-key-0123456789")}
	nstest.Connect(b, srv, cli, []string{"10.97.1.1/24", "fd97:1::1/64"}, []string{"10.97.1.2/24", "fd97:1::2/64"})
	st := fmt.Sprintf("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 1\nOPEN_PORTS tcp/2222\nSESAME_MD5 Y\n",
		base64.StdEncoding.EncodeToString(keys.Key), base64.StdEncoding.EncodeToString(keys.HMACKey))
	md5Daemon(b, srv, "", st)
	for _, server := range []string{"10.97.1.1", "fd97:1::1"} {
		b.Run(map[bool]string{true: "ipv4", false: "ipv6"}[server == "10.97.1.1"], func(b *testing.B) {
			u := &user{name: "alice", ns: cli, server: server, keys: keys}
			rcFor(b, u)
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				time.Sleep(1300 * time.Millisecond) // the previous grant expires
				b.StartTimer()
				total += connectKnock(b, u)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/knock+connect")
		})
	}
}
