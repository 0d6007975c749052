package fwconf

import (
	"encoding/hex"
	"strings"
)

// GPG is a stanza's GnuPG mode: fwknop's GPG_* access.conf variables. The stanza accepts
// GnuPG packets (400 characters or more) when Enabled.
type GPG struct {
	Enabled bool // GPG_DECRYPT_PW set, or GPG_ALLOW_NO_PW Y (as fwknopd decides)

	// HomeDir (GPG_HOME_DIR) and Exe (GPG_EXE) are "" when the stanza does not set them;
	// Server.LoadAccess fills in fwknopd.conf's values (default /root/.gnupg, /usr/bin/gpg).
	HomeDir string
	Exe     string

	DecryptID string // GPG_DECRYPT_ID: the server's key ("" = any secret key of the home)
	DecryptPW string // GPG_DECRYPT_PW: its passphrase
	AllowNoPW bool   // GPG_ALLOW_NO_PW: the key has no passphrase

	// RequireSig is the effective GPG_REQUIRE_SIG: Y by default in a GnuPG stanza unless
	// GPG_DISABLE_SIG Y (and Y whenever GPG_REQUIRE_SIG Y is written, as fwknopd).
	RequireSig           bool
	DisableSig           bool     // GPG_DISABLE_SIG as written
	IgnoreSigVerifyError bool     // GPG_IGNORE_SIG_VERIFY_ERROR
	RemoteIDs            []string // GPG_REMOTE_ID: short key IDs (8 hex digits, upper case)
	FingerprintIDs       []string // GPG_FINGERPRINT_ID: fingerprints (hex, upper case, no spaces)
}

// gpgSignerFix is the fix for a GnuPG stanza without a signer list.
const gpgSignerFix = "add GPG_REMOTE_ID (the client key's last 8 hex digits) or GPG_FINGERPRINT_ID (its fingerprint: gpg --fingerprint), or GPG_DISABLE_SIG Y to accept unsigned packets"

// parseKeyIDs parses a GPG_REMOTE_ID list: 8 hex digits each (fwknop's signature ID); a
// 16-digit long ID or a 40-digit fingerprint is cut to its last 8 digits.
func parseKeyIDs(v string) ([]string, bool) {
	items, err := splitList(v)
	if err != nil {
		return nil, false
	}
	var ids []string
	for _, it := range items {
		n := strings.ToUpper(strings.TrimPrefix(it, "0x"))
		if (len(n) != 8 && len(n) != 16 && len(n) != 40) || !isHexText(n) {
			return nil, false
		}
		ids = append(ids, n[len(n)-8:])
	}
	return ids, len(ids) > 0
}

// parseFingerprints parses a GPG_FINGERPRINT_ID list: 40 (or 64) hex digits each, spaces
// inside an entry ignored.
func parseFingerprints(v string) ([]string, bool) {
	items, err := splitList(v)
	if err != nil {
		return nil, false
	}
	var fprs []string
	for _, it := range items {
		n := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(it, "0x"), " ", ""))
		if (len(n) != 40 && len(n) != 64) || !isHexText(n) {
			return nil, false
		}
		fprs = append(fprs, n)
	}
	return fprs, len(fprs) > 0
}

func isHexText(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// finishGPG applies fwknopd's GnuPG rules to a completed stanza: GnuPG is on with
// GPG_DECRYPT_PW or GPG_ALLOW_NO_PW Y; signatures are then required unless GPG_DISABLE_SIG Y;
// and with signatures checked a signer list (GPG_REMOTE_ID or GPG_FINGERPRINT_ID) is needed,
// else the stanza is refused at its SOURCE line.
func (ap *accessParser) finishGPG(s *Stanza) error {
	g := &s.GPG
	_, pwSet := s.Where["GPG_DECRYPT_PW"]
	g.Enabled = pwSet || g.AllowNoPW
	if !g.Enabled {
		for _, name := range []string{"GPG_HOME_DIR", "GPG_EXE", "GPG_DECRYPT_ID", "GPG_REQUIRE_SIG", "GPG_DISABLE_SIG",
			"GPG_IGNORE_SIG_VERIFY_ERROR", "GPG_REMOTE_ID", "GPG_FINGERPRINT_ID"} {
			if o, ok := s.Where[name]; ok {
				ap.warns = append(ap.warns, pos(o).warn(name, "has no effect: stanza #%d is not a GnuPG stanza (set GPG_DECRYPT_PW, or GPG_ALLOW_NO_PW Y)", s.Num))
			}
		}
		return nil
	}
	_, requireSet := s.Where["GPG_REQUIRE_SIG"]
	if !requireSet || !g.RequireSig {
		g.RequireSig = !g.DisableSig
	}
	if g.DisableSig && g.RequireSig {
		ap.warns = append(ap.warns, pos{s.File, s.Line}.warn("GPG_DISABLE_SIG", "GPG_REQUIRE_SIG and GPG_DISABLE_SIG are both set in stanza #%d: signatures are checked", s.Num))
	}
	if !g.DisableSig && len(g.RemoteIDs) == 0 && len(g.FingerprintIDs) == 0 {
		return pos{s.File, s.Line}.errorf(ErrStanza, "SOURCE", gpgSignerFix,
			"GnuPG stanza #%d (SOURCE %s) checks signatures but lists no signer", s.Num, s.SourceText)
	}
	if !g.RequireSig {
		ap.warns = append(ap.warns, pos{s.File, s.Line}.warn("GPG_DISABLE_SIG", "stanza #%d accepts unsigned GnuPG packets: anyone with the server's public key can knock", s.Num))
	}
	if g.IgnoreSigVerifyError {
		ap.warns = append(ap.warns, pos{s.File, s.Line}.warn("GPG_IGNORE_SIG_VERIFY_ERROR", "stanza #%d accepts signers whose keys are not valid in the keyring (not signed with gpg --quick-lsign-key)", s.Num))
	}
	if s.Keys.HMACKey == nil {
		ap.warns = append(ap.warns, pos{s.File, s.Line}.warn("SOURCE", "GnuPG stanza #%d has no HMAC key: every packet of 400 characters or more costs a private-key decryption (sesame bounds them per source and in total); add HMAC_KEY_BASE64", s.Num))
	}
	if s.Keys.HMACKey != nil && pwSet && g.DecryptPW == string(s.Keys.HMACKey) {
		return pos(s.Where["GPG_DECRYPT_PW"]).errorf(ErrValue, "GPG_DECRYPT_PW", keygenFix+" for the HMAC key", "the HMAC key equals GPG_DECRYPT_PW; they must differ")
	}
	return nil
}

// applyGPGDefaults fills the fwknopd.conf GnuPG defaults into GnuPG stanzas that do not set
// their own.
func applyGPGDefaults(stanzas []*Stanza, home, exe string) {
	for _, st := range stanzas {
		if st.GPG.HomeDir == "" {
			st.GPG.HomeDir = home
		}
		if st.GPG.Exe == "" {
			st.GPG.Exe = exe
		}
	}
}
