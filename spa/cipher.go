package spa

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// encryptRaw returns "Salted__" ‖ salt ‖ AES-256-mode(PKCS#7(pt)) with key and IV derived
// from the passphrase and salt. PKCS#7 padding (1..16 bytes) is applied in every mode, as
// libfko does.
func encryptRaw(pt, pass []byte, m Mode, salt *[saltLen]byte) ([]byte, error) {
	var pbuf [32]byte
	key, iv := deriveKeyIV(passphrase(&pbuf, pass, m), salt)
	defer clear(key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("spa: aes: %w", err)
	}
	pad := aes.BlockSize - len(pt)%aes.BlockSize
	out := make([]byte, 16, 16+len(pt)+pad)
	copy(out, saltedMagic)
	copy(out[8:], salt[:])
	out = append(out, pt...)
	for i := 0; i < pad; i++ {
		out = append(out, byte(pad))
	}
	if err := crypt(block, m, iv[:], out[16:], false); err != nil {
		return nil, err
	}
	return out, nil
}

// decryptRaw decrypts raw ("Salted__" ‖ salt ‖ ciphertext) in place and returns the plaintext
// with valid PKCS#7 padding removed. Like libfko it leaves invalid padding in place rather
// than failing; the plaintext checks that follow catch a wrong key or mode. len(raw) must be
// a positive multiple of 16.
func decryptRaw(raw, pass []byte, m Mode) ([]byte, error) {
	var salt [saltLen]byte
	copy(salt[:], raw[8:16]) // the first 8 bytes are assumed to be "Salted__", unchecked
	var pbuf [32]byte
	key, iv := deriveKeyIV(passphrase(&pbuf, pass, m), &salt)
	defer clear(key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("spa: aes: %w", err)
	}
	ct := raw[16:]
	if err := crypt(block, m, iv[:], ct, true); err != nil {
		return nil, err
	}
	if len(ct) == 0 {
		return ct, nil
	}
	p := int(ct[len(ct)-1])
	if p <= aes.BlockSize && p <= len(ct) {
		ok := true
		for _, b := range ct[len(ct)-p:] {
			if int(b) != p {
				ok = false
			}
		}
		if ok {
			ct = ct[:len(ct)-p]
		}
	}
	return ct, nil
}

// crypt runs mode m over buf in place (len(buf) a multiple of the block size for ECB/CBC).
func crypt(block cipher.Block, m Mode, iv, buf []byte, decrypt bool) error {
	switch m {
	case CBC, Legacy:
		if decrypt {
			cipher.NewCBCDecrypter(block, iv).CryptBlocks(buf, buf)
		} else {
			cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
		}
	case ECB:
		for i := 0; i+aes.BlockSize <= len(buf); i += aes.BlockSize {
			if decrypt {
				block.Decrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
			} else {
				block.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
			}
		}
	// CFB and OFB are deprecated in crypto/cipher (unauthenticated); fwknop's format needs them,
	// and the HMAC provides the authentication.
	case CFB:
		if decrypt {
			//lint:ignore SA1019 fwknop's CFB mode; the HMAC authenticates
			cipher.NewCFBDecrypter(block, iv).XORKeyStream(buf, buf)
		} else {
			//lint:ignore SA1019 fwknop's CFB mode; the HMAC authenticates
			cipher.NewCFBEncrypter(block, iv).XORKeyStream(buf, buf)
		}
	case OFB:
		//lint:ignore SA1019 fwknop's OFB mode; the HMAC authenticates
		cipher.NewOFB(block, iv).XORKeyStream(buf, buf)
	case CTR:
		cipher.NewCTR(block, iv).XORKeyStream(buf, buf)
	default:
		return fmt.Errorf("spa: %v: %w", m, ErrMode)
	}
	return nil
}
