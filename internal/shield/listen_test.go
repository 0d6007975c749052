package shield

import "testing"

func TestListenNetwork(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:2222":    "tcp4",
		"10.0.0.1:2222":   "tcp4",
		"[::]:2222":       "tcp",
		":2222":           "tcp",
		"[::1]:2222":      "tcp6",
		"[fe80::1%lo]:22": "tcp6",
		"localhost:2222":  "tcp",
	} {
		if got, err := ListenNetwork(addr); err != nil || got != want {
			t.Errorf("ListenNetwork(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if _, err := ListenNetwork("2222"); err == nil {
		t.Error("an address without a port accepted")
	}
}
