package fwknoptest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

// rawAccessPacket builds a CBC + HMAC-SHA256 packet (keys "fwknoptest"/"hmactest") whose access
// message is msg, whatever msg is: spa.Encode validates the message, this does not, so the
// test can offer fwknopd messages that sesame refuses. n makes random value and salt unique.
func rawAccessPacket(msg string, ts int64, n int) []byte {
	b := base64.RawStdEncoding
	data := fmt.Sprintf("%016d:%s:%d:3.0.0:1:%s", 1234567890123400+n, b.EncodeToString([]byte("root")), ts,
		b.EncodeToString([]byte(msg)))
	d := sha256.Sum256([]byte(data))
	pt := []byte(data + ":" + b.EncodeToString(d[:]))
	salt := []byte(fmt.Sprintf("salt%04d", n))
	var prev, keyIV []byte // OpenSSL's EVP_BytesToKey, MD5, one round
	for len(keyIV) < 48 {
		h := md5.New()
		h.Write(prev)
		h.Write([]byte("fwknoptest"))
		h.Write(salt)
		prev = h.Sum(nil)
		keyIV = append(keyIV, prev...)
	}
	pad := 16 - len(pt)%16
	for range pad {
		pt = append(pt, byte(pad))
	}
	block, err := aes.NewCipher(keyIV[:32])
	if err != nil {
		panic(err)
	}
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, keyIV[32:48]).CryptBlocks(ct, pt)
	text := b.EncodeToString(append(append([]byte("Salted__"), salt...), ct...))
	mac := hmac.New(sha256.New, []byte("hmactest"))
	mac.Write([]byte(text))
	return []byte(text[len("U2FsdGVkX1"):] + b.EncodeToString(mac.Sum(nil)))
}

// TestIntegrationAccessMessages offers the real fwknopd 2.6.10 access messages at the edges of
// the grammar and checks spa.ParseAccess, the server's one parser of them, against its
// verdicts: sesame accepts what fwknopd accepts, except where sesame is deliberately stricter
// (an allow-IP with a leading zero, which inet_aton reads as octal) or extends it ("none/0",
// lower case only, for the stanza's OPEN_PORTS).
func TestIntegrationAccessMessages(t *testing.T) {
	nstest.Require(t, "fwknopd", "iptables")
	cases := []struct {
		msg            string
		fwknopd, sesam bool
	}{
		{"127.0.0.1,tcp/22", true, true},
		{"127.0.0.1,tcp/22,udp/53", true, true},
		{"127.0.0.1,tcp/022", true, true},
		{"127.0.0.1,TCP/22", false, false},
		{"127.0.0.1,Udp/53", false, false},
		{"127.0.0.1,none/0", false, true}, // sesame's extension
		{"127.0.0.1,NONE/0", false, false},
		{"127.0.0.1,tcp/0", false, false},
		{"0127.0.0.1,tcp/22", true, false}, // fwknopd: 87.0.0.1; sesame refuses the octal trap
		{"::ffff:127.0.0.1,tcp/22", false, false},
		{"fe80::1%lo,tcp/22", false, false},
	}
	for _, c := range cases {
		if _, err := spa.ParseAccess(c.msg); (err == nil) != c.sesam {
			t.Errorf("spa.ParseAccess(%q) = %v, want accepted=%v", c.msg, err, c.sesam)
		}
	}
	ns := nstest.New(t)
	srv := StartServer(t, ns, ServerOptions{Access: "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\n", TestMode: true})
	now := time.Now().Unix()
	for i, c := range cases {
		srv.Send(t, rawAccessPacket(c.msg, now, i))
	}
	verdict := func(ev []Event) map[int]EventKind { // packet number -> decoded or stanza error
		v := map[int]EventKind{}
		for _, e := range ev {
			if e.Kind == EventDecoded || e.Kind == EventStanzaError {
				v[e.Packet] = e.Kind
			}
		}
		return v
	}
	ev := srv.WaitEvents(t, 20*time.Second, func(ev []Event) bool { return len(verdict(ev)) == len(cases) })
	v := verdict(ev)
	for i, c := range cases {
		if got := v[i+1] == EventDecoded; got != c.fwknopd {
			t.Errorf("fwknopd accepted %q: %v, want %v", c.msg, got, c.fwknopd)
		}
	}
}
