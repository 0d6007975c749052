package fwconf

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sesame-spa/sesame/spa"
)

// DumpOptions tune Dump.
type DumpOptions struct {
	// ShowKeys prints keys (as KEY_BASE64 / HMAC_KEY_BASE64); otherwise they are replaced by a
	// comment giving their length.
	ShowKeys bool
}

// DumpServer writes the effective fwknopd.conf, like `fwknopd -D`, as "NAME value" lines
// (sorted by name: every variable that is set, and the defaults of those sesame uses), after a
// "# effective configuration of FILE" comment. The output parses back to the same
// configuration, except that a password in SESAME_FLEET_REDIS is shown as "xxxxx".
// `sesame server -D` prints it.
func DumpServer(w io.Writer, s *Server) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# effective configuration of %s\n", s.File)
	for _, name := range sortedKeys(Variables) {
		v := Variables[name]
		if v.Scope&InServer == 0 {
			continue
		}
		if _, set := s.Raw[name]; !set && (v.Support == NoEffect || v.Support == Unsupported) {
			continue
		}
		if v, _ := s.value(name); v != "" {
			if name == "SESAME_FLEET_REDIS" {
				v = RedactURL(v) // the Redis password stays in the file
			}
			fmt.Fprintf(&b, "%s %s\n", name, v)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// DumpAccess writes the effective access stanzas as access.conf text ("NAME value" lines, a
// "# stanza #N (FILE:LINE)" comment before each), defaults included; keys are hidden unless
// opts.ShowKeys. The output parses back to the same stanzas. `sesame server -D` prints it.
func DumpAccess(w io.Writer, stanzas []*Stanza, opts DumpOptions) error {
	var b strings.Builder
	for i, s := range stanzas {
		if i > 0 {
			b.WriteByte('\n')
		}
		line := func(name, value string) { fmt.Fprintf(&b, "%s %s\n", name, value) }
		fmt.Fprintf(&b, "# stanza #%d (%s:%d)\n", s.Num, s.File, s.Line)
		src := formatPrefixes(s.Source)
		if s.SourceAny {
			src = append([]string{"ANY"}, src...)
		}
		line("SOURCE", strings.Join(src, ", "))
		if len(s.Destination) > 0 {
			line("DESTINATION", strings.Join(formatPrefixes(s.Destination), ", "))
		}
		if len(s.OpenPorts) > 0 {
			line("OPEN_PORTS", formatPorts(s.OpenPorts))
		}
		if len(s.RestrictPorts) > 0 {
			line("RESTRICT_PORTS", formatPorts(s.RestrictPorts))
		}
		for _, k := range []struct {
			name string
			key  []byte
		}{{"KEY_BASE64", s.Keys.Key}, {"HMAC_KEY_BASE64", s.Keys.HMACKey}} {
			switch {
			case k.key == nil:
			case opts.ShowKeys:
				line(k.name, base64.StdEncoding.EncodeToString(k.key))
			default:
				fmt.Fprintf(&b, "# %s (hidden, %d bytes)\n", k.name, len(k.key))
			}
		}
		if s.Keys.HMACKey != nil {
			line("HMAC_DIGEST_TYPE", digestText[s.Keys.HMACType])
		}
		if m, ok := modeText[s.Keys.Mode]; ok {
			line("ENCRYPTION_MODE", m)
		}
		if g := s.GPG; g.Enabled {
			for _, v := range [][2]string{{"GPG_HOME_DIR", g.HomeDir}, {"GPG_EXE", g.Exe}, {"GPG_DECRYPT_ID", g.DecryptID}} {
				if v[1] != "" {
					line(v[0], v[1])
				}
			}
			switch {
			case g.AllowNoPW:
				line("GPG_ALLOW_NO_PW", "Y")
			case opts.ShowKeys:
				line("GPG_DECRYPT_PW", g.DecryptPW)
			default:
				b.WriteString("# GPG_DECRYPT_PW (hidden)\n")
			}
			line("GPG_REQUIRE_SIG", yesNo(g.RequireSig))
			line("GPG_DISABLE_SIG", yesNo(g.DisableSig))
			line("GPG_IGNORE_SIG_VERIFY_ERROR", yesNo(g.IgnoreSigVerifyError))
			if len(g.RemoteIDs) > 0 {
				line("GPG_REMOTE_ID", strings.Join(g.RemoteIDs, ", "))
			}
			if len(g.FingerprintIDs) > 0 {
				line("GPG_FINGERPRINT_ID", strings.Join(g.FingerprintIDs, ", "))
			}
		}
		line("FW_ACCESS_TIMEOUT", strconv.Itoa(int(s.FWAccessTimeout.Seconds())))
		line("MAX_FW_TIMEOUT", strconv.Itoa(int(s.MaxFWTimeout.Seconds())))
		if s.RequireUsername != "" {
			line("REQUIRE_USERNAME", s.RequireUsername)
		}
		line("REQUIRE_SOURCE_ADDRESS", yesNo(s.RequireSourceAddress))
		line("SESAME_REQUIRE_SOURCE_MATCH", yesNo(s.RequireSourceMatch))
		line("SESAME_MD5", yesNo(s.MD5))
		if !s.AccessExpire.IsZero() {
			line("ACCESS_EXPIRE_EPOCH", strconv.FormatInt(s.AccessExpire.Unix(), 10))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

func formatPrefixes(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	return out
}

func formatPorts(ps []spa.ProtoPort) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Proto + "/" + strconv.Itoa(int(p.Port))
	}
	return strings.Join(out, ", ")
}
