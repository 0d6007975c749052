package hostfw

import (
	"testing"

	"github.com/google/nftables/expr"
)

// FuzzParseSave: any iptables -S text either fails to parse or gives chains whose evaluation
// terminates with at least one outcome, for any model packet.
func FuzzParseSave(f *testing.F) {
	f.Add(ufwSave, uint16(22))
	f.Add("-P INPUT DROP\n-N a\n-A INPUT -j a\n-A a -j a\n", uint16(1))
	f.Add(`-A INPUT ! -p tcp -m mark --mark 0x1/0x1 --dport 1:2 -j REJECT --reject-with "x y"`, uint16(2))
	f.Fuzz(func(t *testing.T, s string, port uint16) {
		chains, err := parseSave(s, "ip", "filter")
		if err != nil {
			return
		}
		for _, c := range chains {
			c.mayDrop()
			for _, p := range []packet{{proto: protoTCP, dport: port, mark: 1}, {marked: true, mark: 1}} {
				if c.base && c.eval(p) == 0 {
					t.Fatalf("chain %s: no outcome for %+v", c.name, p)
				}
			}
		}
	})
}

// FuzzDecodeVerdict: decoding never panics, and jumps always name a chain.
func FuzzDecodeVerdict(f *testing.F) {
	f.Add(verdictData(expr.VerdictAccept, ""))
	f.Add(verdictData(expr.VerdictJump, "filter_IN_public"))
	f.Add([]byte{4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, chain, err := decodeVerdict(b)
		if err == nil && (v == vJump || v == vGoto) && chain == "" {
			t.Fatalf("%v without a chain", v)
		}
	})
}

func TestDecodeVerdict(t *testing.T) {
	for _, tc := range []struct {
		b     []byte
		v     verdict
		chain string
	}{
		{verdictData(expr.VerdictAccept, ""), vAccept, ""},
		{verdictData(expr.VerdictDrop, ""), vDrop, ""},
		{verdictData(expr.VerdictGoto, "filter_IN_public"), vGoto, "filter_IN_public"},
		{verdictData(expr.VerdictContinue, ""), 0, ""},
		{verdictData(expr.VerdictQueue, ""), vUnknown, ""},
	} {
		v, chain, err := decodeVerdict(tc.b)
		if err != nil || v != tc.v || chain != tc.chain {
			t.Errorf("decodeVerdict(%x) = %v %q %v, want %v %q", tc.b, v, chain, err, tc.v, tc.chain)
		}
	}
	for _, b := range [][]byte{nil, {4, 0, 2, 0}, verdictData(expr.VerdictJump, "")} {
		if _, _, err := decodeVerdict(b); err == nil {
			t.Errorf("decodeVerdict(%x) accepted", b)
		}
	}
}
