package spa

import (
	"encoding/base64"
	"errors"
)

// b64 is fwknop's base64 flavour on the encoding side: the standard alphabet with every '='
// removed.
var b64 = base64.RawStdEncoding

// errB64 is the internal marker for a base64 decoding failure; callers wrap the sentinel of the
// field being decoded instead.
var errB64 = errors.New("invalid base64")

// b64Val maps an input byte to its 6-bit value, or 0xff for bytes outside the standard
// alphabet.
var b64Val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	return t
}()

// b64Decode appends the decoding of src to dst the way libfko decodes: it stops at the first
// '=' (or the end), rejects any byte outside the standard alphabet and ignores leftover bits,
// so padded and unpadded input decode alike and a lone trailing character adds nothing.
func b64Decode(dst, src []byte) ([]byte, error) {
	var d b64Decoder
	return d.write(dst, src)
}

// b64Decoder decodes base64 text given in several pieces as one stream (the stripped prefix
// ends in the middle of a byte).
type b64Decoder struct {
	v    uint
	n    uint
	stop bool // saw '='
}

func (d *b64Decoder) write(dst, src []byte) ([]byte, error) {
	for _, c := range src {
		if d.stop || c == '=' {
			d.stop = true
			return dst, nil
		}
		x := b64Val[c]
		if x == 0xff {
			return dst, errB64
		}
		d.v = d.v<<6 | uint(x)
		if i := d.n & 3; i != 0 {
			dst = append(dst, byte(d.v>>(6-2*i)))
		}
		d.n++
	}
	return dst, nil
}

// notB64Text is 1 for the bytes isB64Text refuses: outside the standard alphabet and not '='.
var notB64Text = func() (t [256]byte) {
	for i := range t {
		if b64Val[i] == 0xff && i != '=' {
			t[i] = 1
		}
	}
	return t
}()

// isB64Text reports whether every byte of b is a base64 character, '=' included: fwknopd's
// test before it restores the prefix. It has no branch per byte: every packet, forged or not,
// goes through it. Four accumulators let the table loads of eight bytes run in parallel (about
// twice the speed of one).
func isB64Text(b []byte) bool {
	var b0, b1, b2, b3 byte
	for len(b) >= 8 {
		_ = b[7]
		b0 |= notB64Text[b[0]] | notB64Text[b[4]]
		b1 |= notB64Text[b[1]] | notB64Text[b[5]]
		b2 |= notB64Text[b[2]] | notB64Text[b[6]]
		b3 |= notB64Text[b[3]] | notB64Text[b[7]]
		b = b[8:]
	}
	for _, c := range b {
		b0 |= notB64Text[c]
	}
	return b0|b1|b2|b3 == 0
}

// cString cuts b at its first NUL, as C string handling in libfko does with decoded fields.
func cString(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
