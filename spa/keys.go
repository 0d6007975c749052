package spa

import "fmt"

// DecodeKey turns a key as fwknop's configs hold it into bytes: the raw string (KEY,
// HMAC_KEY, --key-rijndael) or, with isBase64, standard base64 with or without '=' padding
// (KEY_BASE64, HMAC_KEY_BASE64). Failures (empty key, non-base64 text) wrap ErrBadKey. The
// length limits depend on the use and are checked by Keys.Validate.
func DecodeKey(raw string, isBase64 bool) ([]byte, error) {
	if !isBase64 {
		if raw == "" {
			return nil, fmt.Errorf("spa: empty key: %w", ErrBadKey)
		}
		return []byte(raw), nil
	}
	k, err := b64Decode(nil, []byte(raw))
	if err != nil {
		return nil, fmt.Errorf("spa: base64 key: %w", ErrBadKey)
	}
	if len(k) == 0 {
		return nil, fmt.Errorf("spa: empty base64 key: %w", ErrBadKey)
	}
	return k, nil
}

// Validate checks k as Encode and Decode do: Key of 1..32 bytes (ErrBadKey), HMAC key of at
// most 136 bytes (ErrBadKey), a known HMAC type (ErrHMACType) and a Rijndael mode (ErrMode;
// Asymmetric and PCBC wrap ErrUnsupported).
func (k Keys) Validate() error {
	if len(k.Key) == 0 || len(k.Key) > maxKeyLen {
		return fmt.Errorf("spa: Rijndael key of %d bytes (want 1..%d): %w", len(k.Key), maxKeyLen, ErrBadKey)
	}
	if len(k.HMACKey) > maxHMACKeyLen {
		return fmt.Errorf("spa: HMAC key of %d bytes (max %d): %w", len(k.HMACKey), maxHMACKeyLen, ErrBadKey)
	}
	if _, err := k.hmacType(); err != nil {
		return err
	}
	_, err := k.mode()
	return err
}

func (k Keys) hmacType() (DigestType, error) {
	switch {
	case k.HMACType == 0:
		return SHA256, nil
	case k.HMACType.valid():
		return k.HMACType, nil
	}
	return 0, fmt.Errorf("spa: HMAC type %d: %w", int(k.HMACType), ErrHMACType)
}

func (k Keys) mode() (Mode, error) {
	switch {
	case k.Mode == 0:
		return CBC, nil
	case k.Mode.symmetric():
		return k.Mode, nil
	case k.Mode == PCBC || k.Mode == Asymmetric:
		return 0, fmt.Errorf("spa: %v mode: %w", k.Mode, ErrUnsupported)
	}
	return 0, fmt.Errorf("spa: mode %d: %w", int(k.Mode), ErrMode)
}
