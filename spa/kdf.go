package spa

import "crypto/md5"

// saltLen is the length of the OpenSSL salt that follows "Salted__".
const saltLen = 8

// saltedMagic is the 8-byte OpenSSL header; its base64 form starts with b64Prefix.
const saltedMagic = "Salted__"

// deriveKeyIV is OpenSSL's EVP_BytesToKey with MD5, one iteration: D1 = MD5(pass‖salt),
// Dn = MD5(Dn-1‖pass‖salt); key = D1‖D2, IV = D3.
func deriveKeyIV(pass []byte, salt *[saltLen]byte) (key [32]byte, iv [16]byte) {
	var buf [md5.Size + 32 + saltLen]byte // previous digest ‖ pass ‖ salt
	n := copy(buf[md5.Size:], pass)
	n += copy(buf[md5.Size+n:], salt[:])
	d := md5.Sum(buf[md5.Size : md5.Size+n])
	copy(key[:16], d[:])
	for i := 0; i < 2; i++ {
		copy(buf[:md5.Size], d[:])
		d = md5.Sum(buf[:md5.Size+n])
		if i == 0 {
			copy(key[16:], d[:])
		} else {
			copy(iv[:], d[:])
		}
	}
	clear(buf[:])
	return key, iv
}

// passphrase returns the bytes fed to the KDF for mode m: legacy mode right-pads a passphrase
// shorter than 16 bytes with ASCII '0' and truncates a longer one to 16 (fwknop's client and
// server both truncate); every other mode uses the key as is. buf provides the storage.
func passphrase(buf *[32]byte, key []byte, m Mode) []byte {
	if m != Legacy {
		return key
	}
	n := copy(buf[:16], key)
	for i := n; i < 16; i++ {
		buf[i] = '0'
	}
	return buf[:16]
}
