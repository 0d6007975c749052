package spa

import (
	"fmt"
	"strings"
)

var modeNames = [...]string{ECB: "ECB", CBC: "CBC", CFB: "CFB", PCBC: "PCBC", OFB: "OFB",
	CTR: "CTR", Asymmetric: "Asymmetric", Legacy: "legacy"}

// String returns fwknop's name for the mode: CBC, ECB, CFB, PCBC, OFB, CTR, Asymmetric, legacy.
func (m Mode) String() string {
	if m >= ECB && m <= Legacy {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses an ENCRYPTION_MODE / -M value: cbc, ecb, cfb, ofb, ctr or legacy, in any
// case. PCBC (defined but refused by fwknop) and unknown names wrap ErrMode.
func ParseMode(name string) (Mode, error) {
	for _, m := range []Mode{CBC, ECB, CFB, OFB, CTR, Legacy} {
		if strings.EqualFold(name, modeNames[m]) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("spa: encryption mode %q: %w", name, ErrMode)
}

// symmetric reports whether m is one of the Rijndael modes this package implements.
func (m Mode) symmetric() bool {
	switch m {
	case CBC, ECB, CFB, OFB, CTR, Legacy:
		return true
	}
	return false
}
