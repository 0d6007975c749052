package nfevents

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mdlayher/netlink"
)

// The files in testdata hold the raw messages the kernel (Linux 6.18, nftables 1.0.6,
// iptables-nft 1.8.9) sent during TestIntegrationNft and TestIntegrationIptables, as received;
// `go test -run Integration -update` rewrites them. Decoding them must give the events those
// tests expect.
func TestGolden(t *testing.T) {
	for file, steps := range map[string][]step{"nft.nlmsg": nftSteps, "iptables.nlmsg": iptablesSteps} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := syscall.ParseNetlinkMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []Event
			for _, r := range raw {
				m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(r.Header.Type)}, Data: r.Data}
				ev, ok, err := Parse(m)
				if err != nil {
					t.Fatalf("message type %#x: %v", r.Header.Type, err)
				}
				if !ok {
					t.Fatalf("message type %#x not decoded", r.Header.Type)
				}
				got = append(got, ev)
			}
			for _, s := range steps {
				want = append(want, s.want...)
			}
			if err := sameEvents(got, want); err != nil {
				t.Errorf("%v\ngot:\n%s\nwant:\n%s", err, list(got), list(want))
			}
		})
	}
}
