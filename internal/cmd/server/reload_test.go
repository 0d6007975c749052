package server

import (
	"slices"
	"testing"
)

// SIGHUP swaps the policy only: a change of a setting read at start is named, not ignored.
func TestRestartOnly(t *testing.T) {
	old := &settings{pcapIntf: "eth0", tableName: "sesame", udpPort: 62201}
	same := *old
	if got := restartOnly(old, &same); len(got) != 0 {
		t.Errorf("nothing changed, got %v", got)
	}
	now := *old
	now.pcapIntf, now.tableName = "eth1", "other"
	now.policy.NAT.Forwarding = true
	got := restartOnly(old, &now)
	for _, want := range []string{"PCAP_INTF", "SESAME_TABLE", "ENABLE_IPT_FORWARDING/ENABLE_IPT_LOCAL_NAT"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not named in %v", want, got)
		}
	}
}
