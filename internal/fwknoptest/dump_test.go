package fwknoptest

import (
	"errors"
	"strings"
	"testing"
)

// clientOutput is the -v output of "fwknop -T" (Debian 2.6.10), trimmed after the first dump.
const clientOutput = `SPA Field Values:
=================
   Random Value: 1756147146120687
       Username: bob
      Timestamp: 1795440126
    FKO Version: 3.0.0
   Message Type: 4 (Client timeout NAT access msg)
 Message String: 10.99.0.2,tcp/22
     Nat Access: 10.0.0.5,22
    Server Auth: <NULL>
 Client Timeout: 60
    Digest Type: 3 (SHA256)
      HMAC Type: 3 (SHA256)
Encryption Type: 1 (Rijndael)
Encryption Mode: 2 (CBC)
   Encoded Data: 1756147146120687:Ym9i:1795440126:3.0.0:4:MTAuOTkuMC4yLHRjcC8yMg:MTAuMC4wLjUsMjI:60
SPA Data Digest: sl00HUL9qv8ITUtGhRlSvpnjXVvKvHo62ZoDSu6T508
           HMAC: PKJwnJPgym0Y+uLVO8UDGq3k0eqlj02N5ckKgsAOJCc
 Final SPA Data: /gxnv5r/qfqDW3rCsIw2olU7W9rGr+nJQcj2jQDHk7EOZ9UbWfpTftNQt50BZs5e48DHtk2kf+qUTBIx6NisslmqP0ZhYPBTX/1PurWsEWdpKCj6C9m2PlS6NaxttcmD9I+v7NpE0YFuBNlwbtqszGPiuLJJIE0v+C+tBaY/uP+m/skLN4BidWPKJwnJPgym0Y+uLVO8UDGq3k0eqlj02N5ckKgsAOJCc

Generating SPA packet:
            protocol: udp
`

func TestParseDump(t *testing.T) {
	d, err := ParseDump("noise before\n" + clientOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := Dump{
		Random: "1756147146120687", Username: "bob", Timestamp: 1795440126, Version: "3.0.0",
		MessageType: 4, MessageTypeName: "Client timeout NAT access msg", Message: "10.99.0.2,tcp/22",
		NATAccess: "10.0.0.5,22", ClientTimeout: 60, DigestType: 3, DigestName: "SHA256",
		HMACType: 3, HMACName: "SHA256", EncryptionType: 1, EncryptionMode: 2, ModeName: "CBC",
		EncodedData:  "1756147146120687:Ym9i:1795440126:3.0.0:4:MTAuOTkuMC4yLHRjcC8yMg:MTAuMC4wLjUsMjI:60",
		Digest:       "sl00HUL9qv8ITUtGhRlSvpnjXVvKvHo62ZoDSu6T508",
		HMAC:         "PKJwnJPgym0Y+uLVO8UDGq3k0eqlj02N5ckKgsAOJCc",
		FinalSPAData: "/gxnv5r/qfqDW3rCsIw2olU7W9rGr+nJQcj2jQDHk7EOZ9UbWfpTftNQt50BZs5e48DHtk2kf+qUTBIx6NisslmqP0ZhYPBTX/1PurWsEWdpKCj6C9m2PlS6NaxttcmD9I+v7NpE0YFuBNlwbtqszGPiuLJJIE0v+C+tBaY/uP+m/skLN4BidWPKJwnJPgym0Y+uLVO8UDGq3k0eqlj02N5ckKgsAOJCc",
	}
	if d != want {
		t.Fatalf("ParseDump:\n got %+v\nwant %+v", d, want)
	}
	m := d.SPAMessage()
	if m.NATAccess != "10.0.0.5,22" || m.ServerAuth != "" || m.ClientTimeout != 60 || m.DigestType != 3 {
		t.Fatalf("SPAMessage: %+v", m)
	}
}

func TestParseDumpErrors(t *testing.T) {
	if _, err := ParseDump("nothing here"); !errors.Is(err, ErrNoDump) {
		t.Fatalf("no dump: %v", err)
	}
	for _, cut := range []string{"    Server Auth: <NULL>\n", " Client Timeout: 60\n"} {
		if _, err := ParseDump(strings.Replace(clientOutput, cut, "", 1)); err == nil {
			t.Errorf("dump without %q parsed", cut)
		}
	}
	bad := strings.Replace(clientOutput, "Timestamp: 1795440126", "Timestamp: soon", 1)
	if _, err := ParseDump(bad); err == nil {
		t.Error("bad timestamp parsed")
	}
	bad = strings.Replace(clientOutput, "3 (SHA256)", "3 SHA256", 1)
	if _, err := ParseDump(bad); err == nil {
		t.Error("bad type name parsed")
	}
}

// A command string may contain ": "; only the first colon after the label separates.
func TestParseDumpColonInValue(t *testing.T) {
	in := strings.Replace(clientOutput, "Message String: 10.99.0.2,tcp/22", "Message String: 10.99.0.2,echo a: b", 1)
	d, err := ParseDump(in)
	if err != nil {
		t.Fatal(err)
	}
	if d.Message != "10.99.0.2,echo a: b" {
		t.Fatalf("message %q", d.Message)
	}
}

func FuzzParseDump(f *testing.F) {
	f.Add(clientOutput)
	f.Add("SPA Field Values:\n=================\n   Random Value: 1\n")
	f.Add("SPA Field Values:")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDump(s)
		if err != nil {
			return
		}
		// A parsed dump has every label, so the header must be there.
		if !strings.Contains(s, "SPA Field Values:") || !strings.Contains(s, "Final SPA Data") {
			t.Fatalf("parsed %+v from text without a full dump", d)
		}
	})
}
