package fwconf

import "testing"

func TestLexLine(t *testing.T) {
	tests := []struct {
		line, name, value string
		ok                bool
		err               bool
	}{
		{line: "PCAP_INTF eth0", name: "PCAP_INTF", value: "eth0", ok: true},
		{line: "PCAP_INTF    vsrv;", name: "PCAP_INTF", value: "vsrv", ok: true},
		{line: "KEY   fwknoptest   \r\n", name: "KEY", value: "fwknoptest", ok: true},
		{line: "PCAP_FILTER udp port 62201 or tcp port 80;  # x", name: "PCAP_FILTER", value: "udp port 62201 or tcp port 80", ok: true},
		{line: "\tSOURCE:\tANY", name: "SOURCE:", value: "ANY", ok: true},
		{line: "KEY a#b", name: "KEY", value: "a#b", ok: true},
		{line: "# KEY x"},
		{line: "; KEY x"},
		{line: "   # indented comment"},
		{line: ""},
		{line: "   \t "},
		{line: "\r"},
		{line: "KEY", name: "KEY", err: true},
		{line: "KEY   ;value", name: "KEY", err: true},
		{line: "KEY   \r", name: "KEY", err: true},
	}
	for _, tt := range tests {
		name, value, ok, msg := lexLine(tt.line)
		if (msg != "") != tt.err || ok != tt.ok || name != tt.name || value != tt.value {
			t.Errorf("lexLine(%q) = %q, %q, %v, %q; want %q, %q, %v, err %v",
				tt.line, name, value, ok, msg, tt.name, tt.value, tt.ok, tt.err)
		}
	}
}
