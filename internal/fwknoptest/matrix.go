package fwknoptest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/spa"
)

// DigestNames maps digest/HMAC types to the names fwknop's -m, --hmac-digest-type and
// access.conf HMAC_DIGEST_TYPE take.
var DigestNames = map[spa.DigestType]string{
	spa.MD5: "md5", spa.SHA1: "sha1", spa.SHA256: "sha256", spa.SHA384: "sha384",
	spa.SHA512: "sha512", spa.SHA3_256: "sha3_256", spa.SHA3_512: "sha3_512",
}

// ModeNames maps the symmetric modes to the names fwknop's -M and ENCRYPTION_MODE take.
var ModeNames = map[spa.Mode]string{
	spa.CBC: "cbc", spa.CFB: "cfb", spa.OFB: "ofb", spa.CTR: "ctr", spa.ECB: "ecb",
	spa.Legacy: "legacy",
}

// typeNames are short labels of the message types for case names.
var typeNames = map[spa.MessageType]string{
	spa.CommandMsg: "command", spa.AccessMsg: "access", spa.NATAccessMsg: "nat",
	spa.ClientTimeoutAccessMsg: "timeout", spa.ClientTimeoutNATAccessMsg: "nat_timeout",
	spa.LocalNATAccessMsg: "localnat", spa.ClientTimeoutLocalNATAccessMsg: "localnat_timeout",
}

// Fixed values the matrix uses.
const (
	MatrixServer  = "10.99.0.1"      // -D; also the host of --nat-local
	MatrixNAT     = "10.99.0.5:2222" // -N
	MatrixTimeout = 120              // -f
	MatrixCommand = "true"           // -C; harmless if fwknopd runs it (ENABLE_CMD_EXEC Y)
	MatrixUser    = "alice"          // -U in the cases that spoof a user
)

// Case is one client configuration of the interop matrix.
type Case struct {
	Index      int
	Name       string
	Digest     spa.DigestType
	HMAC       spa.DigestType // 0: no HMAC
	Mode       spa.Mode
	Type       spa.MessageType
	User       string // "" lets fwknop pick the login name
	Base64Keys bool   // keys given as --key-base64-* (binary bytes) instead of raw text
	LongKeys   bool   // 32-byte Rijndael key and 64-byte HMAC key instead of short ones
	Keys       spa.Keys
	AllowIP    string // 10.98.<index>.2 (unique per case), or 0.0.0.0: the client's -s
	Access     string // the access part after the allow IP: "tcp/22" or "tcp/22,udp/53"
	Label      string // Extras only: what the case adds to the matrix, the end of its Name
}

// Matrix returns the interop cases: a pairwise covering set over digest type (7), HMAC
// type (none + 7), encryption mode (CBC CFB OFB CTR ECB legacy; legacy only without HMAC),
// message type (7), username (default, -U), key form (raw, base64) and key length (short,
// 32 bytes). Every pair of values of any two dimensions occurs in some case. The set and
// the keys are deterministic.
func Matrix() []Case {
	digests := []spa.DigestType{spa.MD5, spa.SHA1, spa.SHA256, spa.SHA384, spa.SHA512, spa.SHA3_256, spa.SHA3_512}
	hmacs := append([]spa.DigestType{0}, digests...)
	modes := []spa.Mode{spa.CBC, spa.CFB, spa.OFB, spa.CTR, spa.ECB, spa.Legacy}
	types := []spa.MessageType{spa.AccessMsg, spa.NATAccessMsg, spa.ClientTimeoutAccessMsg,
		spa.ClientTimeoutNATAccessMsg, spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg, spa.CommandMsg}
	sizes := []int{len(digests), len(hmacs), len(modes), len(types), 2, 2, 2}
	allowed := func(r []int) bool {
		// fwknop refuses legacy mode together with HMAC.
		return !(r[2] >= 0 && modes[r[2]] == spa.Legacy && r[1] > 0)
	}
	var cases []Case
	for i, r := range pairwise(sizes, allowed, 2385) {
		c := Case{
			Index: i, Digest: digests[r[0]], HMAC: hmacs[r[1]], Mode: modes[r[2]], Type: types[r[3]],
			Base64Keys: r[5] == 1, LongKeys: r[6] == 1,
			AllowIP: fmt.Sprintf("10.98.%d.2", i), Access: "tcp/22",
		}
		if r[4] == 1 {
			c.User = MatrixUser
		}
		if c.Type == spa.AccessMsg && i%2 == 1 {
			c.Access = "tcp/22,udp/53"
		}
		c.Keys = caseKeys(c)
		c.Name = c.name()
		cases = append(cases, c)
	}
	return cases
}

// Extras are hand-picked cases the pairwise Matrix does not produce: the source address as
// allow-IP (the client's -s, "0.0.0.0"), and the longest username the client sends (29
// characters) with several ports up to 65535. They follow the matrix in the recorded vectors
// (Recorded); their indexes continue the matrix's, so their keys are unique too.
func Extras() []Case {
	n := len(Matrix())
	extras := []Case{
		{Digest: spa.SHA256, HMAC: spa.SHA256, Mode: spa.CBC, Type: spa.AccessMsg, AllowIP: "0.0.0.0",
			Access: "tcp/22", Label: "source_ip"},
		{Digest: spa.SHA256, HMAC: spa.SHA512, Mode: spa.CTR, Type: spa.AccessMsg, User: "a-very-long_user.name~29chars",
			Access: "tcp/22,udp/53,tcp/65535", Label: "ports_long_user"},
	}
	for i := range extras {
		c := &extras[i]
		c.Index = n + i
		if c.AllowIP == "" {
			c.AllowIP = fmt.Sprintf("10.98.%d.2", c.Index)
		}
		c.Keys = caseKeys(*c)
		c.Name = c.name()
	}
	return extras
}

// Recorded returns the cases of the recorded vectors (VectorsFile), in file order: Matrix,
// then Extras.
func Recorded() []Case { return append(Matrix(), Extras()...) }

func (c Case) name() string {
	h := "nohmac"
	if c.HMAC != 0 {
		h = "hmac_" + DigestNames[c.HMAC]
	}
	parts := []string{fmt.Sprintf("%02d", c.Index), DigestNames[c.Digest], h, ModeNames[c.Mode], typeNames[c.Type]}
	if c.User != "" {
		parts = append(parts, "user")
	}
	if c.Base64Keys {
		parts = append(parts, "b64")
	}
	if c.LongKeys {
		parts = append(parts, "long")
	}
	if c.Label != "" {
		parts = append(parts, c.Label)
	}
	return strings.Join(parts, "-")
}

// caseKeys derives the case's keys deterministically from its index.
func caseKeys(c Case) spa.Keys {
	k := spa.Keys{Mode: c.Mode}
	switch {
	case c.Base64Keys && c.LongKeys:
		s := sha256.Sum256([]byte(fmt.Sprintf("sesame key %d", c.Index)))
		k.Key = s[:]
	case c.Base64Keys:
		s := sha256.Sum256([]byte(fmt.Sprintf("sesame key %d", c.Index)))
		k.Key = s[:10]
	case c.LongKeys:
		k.Key = []byte(fmt.Sprintf("case%02d-0123456789abcdefghijklmnopq", c.Index)[:32])
	default:
		k.Key = []byte(fmt.Sprintf("k%02dsesame", c.Index))
	}
	if c.HMAC == 0 {
		return k
	}
	k.HMACType = c.HMAC
	switch {
	case c.Base64Keys && c.LongKeys:
		s := sha512.Sum512([]byte(fmt.Sprintf("sesame hmac %d", c.Index)))
		k.HMACKey = s[:]
	case c.Base64Keys:
		s := sha512.Sum512([]byte(fmt.Sprintf("sesame hmac %d", c.Index)))
		k.HMACKey = s[:16]
	case c.LongKeys:
		k.HMACKey = []byte(fmt.Sprintf("hmac%02d-%s", c.Index, strings.Repeat("0123456789abcdef", 4))[:64])
	default:
		k.HMACKey = []byte(fmt.Sprintf("h%02d-hmactest", c.Index))
	}
	return k
}

// ClientArgs returns the fwknop client flags for the case (without the ones Client adds).
func (c Case) ClientArgs() []string {
	args := []string{"-D", MatrixServer, "-a", c.AllowIP, "-m", DigestNames[c.Digest], "-M", ModeNames[c.Mode]}
	if c.AllowIP == "0.0.0.0" {
		args = []string{"-D", MatrixServer, "-s", "-m", DigestNames[c.Digest], "-M", ModeNames[c.Mode]}
	}
	if c.Type == spa.CommandMsg {
		args = append(args, "-C", MatrixCommand)
	} else {
		args = append(args, "-A", c.Access)
	}
	switch c.Type {
	case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg:
		args = append(args, "-N", MatrixNAT)
	case spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		args = append(args, "--nat-local")
	}
	switch c.Type {
	case spa.ClientTimeoutAccessMsg, spa.ClientTimeoutNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		args = append(args, "-f", fmt.Sprint(MatrixTimeout))
	}
	if c.User != "" {
		args = append(args, "-U", c.User)
	}
	if c.Base64Keys {
		args = append(args, "--key-base64-rijndael", base64.StdEncoding.EncodeToString(c.Keys.Key))
	} else {
		args = append(args, "--key-rijndael", string(c.Keys.Key))
	}
	if c.HMAC != 0 {
		args = append(args, "--use-hmac", "--hmac-digest-type", DigestNames[c.HMAC])
		if c.Base64Keys {
			args = append(args, "--key-base64-hmac", base64.StdEncoding.EncodeToString(c.Keys.HMACKey))
		} else {
			args = append(args, "--key-hmac", string(c.Keys.HMACKey))
		}
	}
	return args
}

// Expected returns the fields the case's packet must carry (what the client was asked
// for). Random, Timestamp, Version and Digest are left empty; Username is MatrixUser or "".
func (c Case) Expected() spa.Message {
	m := spa.Message{Type: c.Type, Username: c.User, DigestType: c.Digest, Message: c.AllowIP + "," + c.Access}
	switch c.Type {
	case spa.CommandMsg:
		m.Message = c.AllowIP + "," + MatrixCommand
	case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg:
		m.NATAccess = strings.Replace(MatrixNAT, ":", ",", 1)
	case spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		m.NATAccess = MatrixServer + ",22"
	}
	switch c.Type {
	case spa.ClientTimeoutAccessMsg, spa.ClientTimeoutNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		m.ClientTimeout = MatrixTimeout
	}
	return m
}

// Message returns the message sesame should encode for the case at time now (username
// "sesame" when the case leaves it to the client).
func (c Case) Message(now time.Time) spa.Message {
	m := c.Expected()
	if m.Username == "" {
		m.Username = "sesame"
	}
	m.Timestamp = now.Unix()
	return m
}

// Stanza returns an access.conf stanza (SOURCE ANY) that accepts the case's packets: its
// keys, HMAC type and mode, REQUIRE_USERNAME when the case spoofs a user, and
// ENABLE_CMD_EXEC for command messages. NAT cases also need ENABLE_IPT_FORWARDING Y and
// ENABLE_IPT_LOCAL_NAT Y in fwknopd.conf (see MatrixServerConfig).
func (c Case) Stanza() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SOURCE ANY\n")
	if c.Base64Keys {
		fmt.Fprintf(&b, "KEY_BASE64 %s\n", base64.StdEncoding.EncodeToString(c.Keys.Key))
	} else {
		fmt.Fprintf(&b, "KEY %s\n", c.Keys.Key)
	}
	if c.HMAC != 0 {
		if c.Base64Keys {
			fmt.Fprintf(&b, "HMAC_KEY_BASE64 %s\n", base64.StdEncoding.EncodeToString(c.Keys.HMACKey))
		} else {
			fmt.Fprintf(&b, "HMAC_KEY %s\n", c.Keys.HMACKey)
		}
		fmt.Fprintf(&b, "HMAC_DIGEST_TYPE %s\n", DigestNames[c.HMAC])
	}
	fmt.Fprintf(&b, "ENCRYPTION_MODE %s\n", ModeNames[c.Mode])
	if c.User != "" {
		fmt.Fprintf(&b, "REQUIRE_USERNAME %s\n", c.User)
	}
	if c.Type == spa.CommandMsg {
		fmt.Fprintf(&b, "ENABLE_CMD_EXEC Y\n")
	}
	fmt.Fprintf(&b, "FW_ACCESS_TIMEOUT 30\n")
	return b.String()
}

// MatrixServerConfig are the fwknopd.conf lines the matrix's NAT cases need.
var MatrixServerConfig = []string{"ENABLE_IPT_FORWARDING Y;", "ENABLE_IPT_LOCAL_NAT Y;"}
