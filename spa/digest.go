package spa

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

var digestNames = [...]string{MD5: "MD5", SHA1: "SHA1", SHA256: "SHA256", SHA384: "SHA384",
	SHA512: "SHA512", SHA3_256: "SHA3_256", SHA3_512: "SHA3_512"}

// String returns the upper-case name fwknop prints (MD5 ... SHA3_512).
func (d DigestType) String() string {
	if d.valid() {
		return digestNames[d]
	}
	return fmt.Sprintf("DigestType(%d)", int(d))
}

func (d DigestType) valid() bool { return d >= MD5 && d <= SHA3_512 }

// ParseDigestType parses a digest or HMAC type name as fwknop's configs and command line spell
// it (md5, sha1, sha256, sha384, sha512, sha3_256, sha3_512), in any case.
func ParseDigestType(name string) (DigestType, error) {
	for d := MD5; d <= SHA3_512; d++ {
		if strings.EqualFold(name, digestNames[d]) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("spa: digest type %q: %w", name, ErrDigestType)
}

// newHash returns the constructor of d's hash; d must be valid.
func (d DigestType) newHash() func() hash.Hash {
	switch d {
	case MD5:
		return md5.New
	case SHA1:
		return sha1.New
	case SHA256:
		return sha256.New
	case SHA384:
		return sha512.New384
	case SHA512:
		return sha512.New
	case SHA3_256:
		return func() hash.Hash { return sha3.New256() }
	case SHA3_512:
		return func() hash.Hash { return sha3.New512() }
	}
	panic("spa: newHash of invalid digest type")
}

// b64Len is the length of d's digest in unpadded base64.
func (d DigestType) b64Len() int {
	switch d {
	case MD5:
		return 22
	case SHA1:
		return 27
	case SHA256, SHA3_256:
		return 43
	case SHA384:
		return 64
	case SHA512, SHA3_512:
		return 86
	}
	return 0
}

// sum returns the raw digest of data.
func (d DigestType) sum(dst, data []byte) []byte {
	switch d {
	case MD5:
		s := md5.Sum(data)
		return append(dst, s[:]...)
	case SHA1:
		s := sha1.Sum(data)
		return append(dst, s[:]...)
	case SHA256:
		s := sha256.Sum256(data)
		return append(dst, s[:]...)
	case SHA384:
		s := sha512.Sum384(data)
		return append(dst, s[:]...)
	case SHA512:
		s := sha512.Sum512(data)
		return append(dst, s[:]...)
	case SHA3_256:
		s := sha3.Sum256(data)
		return append(dst, s[:]...)
	case SHA3_512:
		s := sha3.Sum512(data)
		return append(dst, s[:]...)
	}
	panic("spa: sum of invalid digest type")
}

// digestB64 is the inner digest of encoded data: unpadded base64 of d's hash.
func (d DigestType) digestB64(data []byte) string {
	var buf [64]byte
	return b64.EncodeToString(d.sum(buf[:0], data))
}

// digestTypesForLen lists the digest types whose base64 form has n characters, in the order
// fwknop tries them (SHA-2 before SHA-3).
func digestTypesForLen(n int) []DigestType {
	switch n {
	case 22:
		return []DigestType{MD5}
	case 27:
		return []DigestType{SHA1}
	case 43:
		return []DigestType{SHA256, SHA3_256}
	case 64:
		return []DigestType{SHA384}
	case 86:
		return []DigestType{SHA512, SHA3_512}
	}
	return nil
}
