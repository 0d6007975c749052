package fwconf

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/spa"
)

// MaxIncludeDepth is how deep access files may nest: the top file, a file it includes, and a
// file that one includes (fwknopd's limit).
const MaxIncludeDepth = 3

// Key length limits.
const (
	MaxKeyLen     = 32  // Rijndael passphrase, bytes
	MaxHMACKeyLen = 128 // HMAC key, bytes
)

const keygenFix = "generate keys with 'sesame keygen'"

// keyVars are the variables %include_keys takes from its file.
var keyVars = map[string]bool{"KEY": true, "KEY_BASE64": true, "HMAC_KEY": true, "HMAC_KEY_BASE64": true}

// LoadAccess reads an access.conf file, following %include, %include_folder and
// %include_keys, and returns its stanzas in load order.
func LoadAccess(path string, opts Options) ([]*Stanza, []Warning, error) {
	ap := newAccessParser(opts)
	ap.errs.add(ap.include(pos{File: path}, path, 0))
	return ap.done(path)
}

// LoadAccessFolder reads every *.conf file in dir, in name order, as fwknopd's
// --access-folder / ACCESS_FOLDER does.
func LoadAccessFolder(dir string, opts Options) ([]*Stanza, []Warning, error) {
	ap := newAccessParser(opts)
	ap.errs.add(ap.folder(pos{File: dir}, dir, 0))
	return ap.done(dir)
}

// LoadAccess loads the access stanzas the server configuration names: ACCESS_FOLDER when set,
// else ACCESS_FILE.
// GnuPG stanzas without their own GPG_HOME_DIR or GPG_EXE get fwknopd.conf's.
func (s *Server) LoadAccess(opts Options) ([]*Stanza, []Warning, error) {
	var st []*Stanza
	var w []Warning
	var err error
	if s.AccessFolder != "" {
		st, w, err = LoadAccessFolder(s.AccessFolder, opts)
	} else {
		st, w, err = LoadAccess(s.AccessFile, opts)
	}
	if err == nil {
		applyGPGDefaults(st, s.GPGHomeDir, s.GPGExe)
	}
	return st, w, err
}

// ParseAccess parses access.conf text; name is used in messages. Includes are resolved
// through opts' file system (none for the zero Options: they fail).
func ParseAccess(name string, data []byte, opts Options) ([]*Stanza, []Warning, error) {
	if opts.fs == nil {
		opts.fs = noFS{}
	}
	ap := newAccessParser(opts)
	ap.errs.add(ap.file(name, data, 1))
	return ap.done(name)
}

type accessParser struct {
	fsys    fileSystem
	loc     *time.Location
	cwd     string // the working directory, against which fwknopd resolves relative includes
	stanzas []*Stanza
	bad     map[*Stanza]bool // stanzas with an error in one of their lines: not finished
	warns   []Warning
	errs    errList
	files   *[]string // Options.Read
}

func newAccessParser(opts Options) *accessParser {
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	cwd := opts.cwd
	if cwd == "" {
		cwd, _ = os.Getwd()
	}
	return &accessParser{fsys: opts.fsys(), loc: loc, cwd: cwd, bad: map[*Stanza]bool{}, files: opts.Read}
}

// done returns the stanzas, or every error met (errList.err) and no stanzas.
func (ap *accessParser) done(name string) ([]*Stanza, []Warning, error) {
	if err := ap.errs.err(); err != nil {
		return nil, ap.warns, err
	}
	if len(ap.stanzas) == 0 {
		return nil, ap.warns, &Error{File: name, Msg: "no SOURCE stanza found", Fix: "add a stanza starting with a SOURCE line", Err: ErrStanza}
	}
	return ap.stanzas, ap.warns, nil
}

// read reads a file, turning permission remarks into warnings.
func (ap *accessParser) read(from pos, name, path string) ([]byte, error) {
	data, remarks, err := ap.fsys.ReadFile(path)
	if err != nil {
		return nil, from.errorf(ErrInclude, name, "", "cannot read %s: %v", path, err)
	}
	if ap.files != nil {
		*ap.files = append(*ap.files, path)
	}
	for _, r := range remarks {
		ap.warns = append(ap.warns, Warning{File: path, Msg: r})
	}
	return data, nil
}

// include parses the access file at path, included from `from` at depth (0 for the top file).
func (ap *accessParser) include(from pos, path string, depth int) error {
	if depth >= MaxIncludeDepth {
		return from.errorf(ErrInclude, "%include", "flatten the includes",
			"refusing to nest access files more than %d deep", MaxIncludeDepth)
	}
	name := ""
	if depth > 0 {
		name = "%include"
	}
	data, err := ap.read(from, name, path)
	if err != nil {
		return err
	}
	return ap.file(path, data, depth+1)
}

// folder parses every *.conf file in dir, sorted.
func (ap *accessParser) folder(from pos, dir string, depth int) error {
	files, err := confFiles(ap.fsys, dir)
	if err != nil {
		name := ""
		if depth > 0 {
			name = "%include_folder"
		}
		return from.errorf(ErrInclude, name, "", "cannot read folder %s: %v", dir, err)
	}
	var errs errList
	for _, f := range files {
		errs.add(ap.include(from, f, depth))
	}
	return errs.err()
}

// resolve makes a relative include path relative to the including file's directory, and warns
// when fwknopd, which opens it relative to its working directory, would read another file.
// sesame does not follow fwknopd here on purpose: a path taken from the working directory
// means a different file whenever the server is started from elsewhere (a shell in /tmp or a
// home directory, systemd's /), and can name a file others may write.
func (ap *accessParser) resolve(p pos, name, path string) string {
	if filepath.IsAbs(path) || p.File == "" {
		return path
	}
	mine := filepath.Join(filepath.Dir(p.File), path)
	if ap.cwd != "" {
		abs := mine
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(ap.cwd, abs)
		}
		if theirs := filepath.Join(ap.cwd, path); theirs != abs {
			ap.warns = append(ap.warns, p.warn(name, "relative path %q: sesame reads %s (beside the including file); fwknopd would read %s (its working directory); write an absolute path", path, abs, theirs))
		}
	}
	return mine
}

// file parses one access file at depth (1 for the top file). It returns every error met; a
// stanza with an error in one of its lines is not finished (its other checks would only
// repeat the error).
func (ap *accessParser) file(path string, data []byte, depth int) error {
	var cur *Stanza
	var errs errList
	finish := func() {
		if cur != nil && !ap.bad[cur] {
			errs.add(ap.finish(cur))
		}
	}
	errs.add(lines(data, func(e entry) error {
		p := pos{path, e.Line}
		name := e.Name
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[:i] // "SOURCE:" is tolerated
		}
		if e.Syntax != "" { // fwknopd stops at such a line in access.conf
			if cur != nil {
				ap.bad[cur] = true
			}
			return p.errorf(ErrSyntax, name, "write 'NAME value' on one line", "%s", e.Syntax)
		}
		var err error
		switch name {
		case "%include":
			err = ap.include(p, ap.resolve(p, name, e.Value), depth)
		case "%include_folder":
			if depth >= MaxIncludeDepth {
				err = p.errorf(ErrInclude, name, "flatten the includes",
					"refusing to nest access files more than %d deep", MaxIncludeDepth)
			} else {
				err = ap.folder(p, ap.resolve(p, name, e.Value), depth)
			}
		case "SOURCE":
			finish()
			cur = &Stanza{File: path, Line: e.Line, Num: len(ap.stanzas) + 1, SourceText: e.Value,
				Raw: map[string]string{}, Where: map[string]Origin{}}
			ap.stanzas = append(ap.stanzas, cur)
			err = ap.set(cur, p, name, e.Value)
		default:
			if cur == nil {
				ap.warns = append(ap.warns, p.warn(name, "appears before the first SOURCE line; ignored"))
				return nil
			}
			if name == "%include_keys" {
				err = ap.includeKeys(cur, p, ap.resolve(p, name, e.Value))
			} else {
				err = ap.set(cur, p, name, e.Value)
			}
		}
		if err != nil && cur != nil && name != "%include" && name != "%include_folder" {
			ap.bad[cur] = true
		}
		return err
	}))
	finish()
	return errs.err()
}

// includeKeys takes only the key variables from a file.
func (ap *accessParser) includeKeys(cur *Stanza, from pos, path string) error {
	data, err := ap.read(from, "%include_keys", path)
	if err != nil {
		return err
	}
	return lines(data, func(e entry) error {
		p := pos{path, e.Line}
		name := e.Name
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[:i]
		}
		if e.Syntax != "" {
			return p.errorf(ErrSyntax, name, "write 'NAME value' on one line", "%s", e.Syntax)
		}
		if !keyVars[name] {
			if v, ok := Variables[name]; ok && v.Support == Unsupported {
				return p.errorf(ErrUnsupported, name, "remove it", "%s is not supported by sesame (%s)", name, v.Note)
			}
			ap.warns = append(ap.warns, p.warn(name, "only KEY, KEY_BASE64, HMAC_KEY and HMAC_KEY_BASE64 are taken from an %%include_keys file; ignored"))
			return nil
		}
		return ap.set(cur, p, name, e.Value)
	})
}

// set applies one variable to the current stanza.
func (ap *accessParser) set(s *Stanza, p pos, name, val string) error {
	v, known := Variables[name]
	if !known || v.Scope&InAccess == 0 {
		if known {
			ap.warns = append(ap.warns, p.warn(name, "belongs in fwknopd.conf; ignored"))
		} else {
			ap.warns = append(ap.warns, p.warn(name, "unknown variable; ignored"))
		}
		return nil
	}
	w, err := checkSupport(p, name, val, v)
	if err != nil {
		return err
	}
	if w != nil {
		ap.warns = append(ap.warns, *w)
	}
	if o, dup := s.Where[name]; dup && name != "SOURCE" {
		ap.warns = append(ap.warns, p.warn(name, "also set at %s:%d in this stanza; this later value wins", o.File, o.Line))
	}
	s.Raw[name] = val
	s.Where[name] = Origin(p)
	bad := func(fix, format string, args ...any) error {
		return p.errorf(ErrValue, name, fix, format, args...)
	}
	yn := func() (bool, error) {
		b, ok := parseYN(val)
		if !ok {
			return false, bad("use Y or N", "%q is not Y or N", val)
		}
		return b, nil
	}
	var err2 error
	switch name {
	case "SOURCE":
		s.Source, s.SourceAny, err2 = ParseAddrList(val)
		if err2 != nil {
			return bad("write ANY, addresses or prefixes, comma-separated", "%v", err2)
		}
	case "DESTINATION":
		var any bool
		s.Destination, any, err2 = ParseAddrList(val)
		if err2 != nil {
			return bad("write ANY, addresses or prefixes, comma-separated", "%v", err2)
		}
		if any {
			s.Destination = nil
		}
	case "OPEN_PORTS", "RESTRICT_PORTS":
		ports, err := ParsePorts(val)
		if err != nil {
			return bad(`write e.g. "tcp/22, udp/53"`, "%v", err)
		}
		if name == "OPEN_PORTS" {
			s.OpenPorts = ports
		} else {
			s.RestrictPorts = ports
		}
	case "KEY", "HMAC_KEY", "KEY_BASE64", "HMAC_KEY_BASE64":
		if strings.EqualFold(val, "__CHANGEME__") {
			return p.errorf(ErrPlaceholder, name, keygenFix+" and put them here",
				"still the shipped placeholder __CHANGEME__")
		}
		key := []byte(val)
		if strings.HasSuffix(name, "_BASE64") {
			key, err2 = decodeBase64(val)
			if err2 != nil {
				return bad(keygenFix, "value is not valid base64")
			}
			if len(key) == 0 {
				return bad(keygenFix, "value decodes to an empty key")
			}
		}
		if strings.HasPrefix(name, "HMAC") {
			s.Keys.HMACKey = key
		} else {
			s.Keys.Key = key
		}
	case "HMAC_DIGEST_TYPE":
		t, err := spa.ParseDigestType(val)
		if err != nil {
			return bad("use one of md5, sha1, sha256, sha384, sha512, sha3_256, sha3_512", "unknown digest type %q", val)
		}
		s.Keys.HMACType = t
	case "ENCRYPTION_MODE":
		lv := strings.ToLower(val)
		if lv == "asymmetric" || lv == "gpg" {
			return p.errorf(ErrUnsupported, name, "remove it: GPG_DECRYPT_PW or GPG_ALLOW_NO_PW Y makes a stanza accept GnuPG packets",
				"ENCRYPTION_MODE %s is not a Rijndael mode", val)
		}
		if lv == "pcbc" {
			return p.errorf(ErrUnsupported, name, "use CBC", "PCBC mode is not supported")
		}
		m, err := spa.ParseMode(lv)
		if err != nil {
			return bad("use one of CBC, CTR, CFB, OFB, ECB, legacy", "unknown encryption mode %q", val)
		}
		s.Keys.Mode = m
	case "FW_ACCESS_TIMEOUT", "MAX_FW_TIMEOUT":
		n, err := parseUint(val, 0, 2<<22)
		if err != nil {
			return bad("", "%v", err)
		}
		if name == "FW_ACCESS_TIMEOUT" {
			s.FWAccessTimeout = time.Duration(n) * time.Second
		} else {
			s.MaxFWTimeout = time.Duration(n) * time.Second
		}
	case "REQUIRE_USERNAME":
		s.RequireUsername = val
	case "REQUIRE_SOURCE_ADDRESS", "REQUIRE_SOURCE":
		s.RequireSourceAddress, err2 = yn()
	case "SESAME_REQUIRE_SOURCE_MATCH":
		s.RequireSourceMatch, err2 = yn()
		s.RequireSourceMatchSet = true
	case "SESAME_MD5":
		s.MD5, err2 = yn()
	case "GPG_HOME_DIR":
		s.GPG.HomeDir = val
	case "GPG_EXE":
		s.GPG.Exe = val
	case "GPG_DECRYPT_ID":
		s.GPG.DecryptID = val
	case "GPG_DECRYPT_PW":
		if val == "" || strings.EqualFold(val, "__CHANGEME__") {
			return bad("set the passphrase of the server's GnuPG key, or use GPG_ALLOW_NO_PW Y", "no passphrase")
		}
		s.GPG.DecryptPW = val
	case "GPG_ALLOW_NO_PW":
		s.GPG.AllowNoPW, err2 = yn()
	case "GPG_REQUIRE_SIG":
		s.GPG.RequireSig, err2 = yn()
	case "GPG_DISABLE_SIG":
		s.GPG.DisableSig, err2 = yn()
	case "GPG_IGNORE_SIG_VERIFY_ERROR":
		s.GPG.IgnoreSigVerifyError, err2 = yn()
	case "GPG_REMOTE_ID":
		ids, ok := parseKeyIDs(val)
		if !ok {
			return bad("list the signers' short IDs, the last 8 hex digits of their fingerprints (gpg --list-keys --keyid-format short), comma-separated", "%q is not a list of key IDs", val)
		}
		s.GPG.RemoteIDs = ids
	case "GPG_FINGERPRINT_ID":
		fprs, ok := parseFingerprints(val)
		if !ok {
			return bad("list the signers' fingerprints (40 hex digits: gpg --fingerprint), comma-separated", "%q is not a list of fingerprints", val)
		}
		s.GPG.FingerprintIDs = fprs
	case "ENABLE_CMD_EXEC":
		s.Cmd.Exec, err2 = yn()
	case "ENABLE_CMD_SUDO_EXEC":
		s.Cmd.Sudo, err2 = yn()
	case "CMD_EXEC_USER":
		s.Cmd.User = val
	case "CMD_EXEC_GROUP":
		s.Cmd.Group = val
	case "CMD_SUDO_EXEC_USER":
		s.Cmd.SudoUser = val
	case "CMD_SUDO_EXEC_GROUP":
		s.Cmd.SudoGroup = val
	case "CMD_CYCLE_OPEN", "CMD_CYCLE_CLOSE":
		if len(val) > MaxCycleCommand {
			return bad("shorten it, or run a script", "command is %d bytes; at most %d are allowed", len(val), MaxCycleCommand)
		}
		if name == "CMD_CYCLE_OPEN" {
			s.Cmd.CycleOpen = val
		} else {
			s.Cmd.CycleClose = val
		}
	case "CMD_CYCLE_TIMER":
		n, err := parseUint(val, 0, 2<<22) // 0 (fwknopd -D's "not set"; fwknopd refuses it) is unset
		if err != nil {
			return bad("write seconds", "%v", err)
		}
		s.Cmd.CycleTimer = time.Duration(n) * time.Second
	case "FORCE_NAT":
		s.ForceNAT, err2 = parseForceNAT(val)
		if err2 != nil {
			return bad(`write "<ip> <port>", e.g. "192.0.2.10 22"`, "%v", err2)
		}
	case "FORCE_SNAT":
		a, err := netip.ParseAddr(strings.TrimSpace(val))
		if err != nil || a.Zone() != "" || a.IsUnspecified() {
			return bad("write one IP address", "%q is not an IP address", val)
		}
		s.ForceSNAT = a.Unmap()
	case "FORCE_MASQUERADE":
		s.ForceMasquerade, err2 = yn()
	case "DISABLE_DNAT":
		s.DisableDNAT, err2 = yn()
	case "FORWARD_ALL":
		s.ForwardAll, err2 = yn()
	case "ACCESS_EXPIRE":
		s.AccessExpire, err2 = parseExpire(val, ap.loc)
		if err2 != nil {
			return bad("write MM/DD/YYYY", "%v", err2)
		}
	case "ACCESS_EXPIRE_EPOCH":
		n, err := parseUint(val, 0, 1<<40)
		if err != nil {
			return bad("write Unix seconds", "%v", err)
		}
		s.AccessExpire = time.Unix(n, 0)
	default:
		// NoEffect and DefaultOnly variables: nothing to store beyond Raw, but a Y/N one must
		// still read as Y or N.
		if _, ok := parseYN(val); !ok && (v.Default == "Y" || v.Default == "N") {
			return bad("use Y or N", "%q is not Y or N", val)
		}
	}
	return err2
}

// finish applies defaults and checks a completed stanza.
func (ap *accessParser) finish(s *Stanza) error {
	at := func(name string) pos {
		if o, ok := s.Where[name]; ok {
			return pos(o)
		}
		return pos{s.File, s.Line}
	}
	keyVar := func(hmac bool) string {
		prefix := "KEY"
		if hmac {
			prefix = "HMAC_KEY"
		}
		a, b := s.Where[prefix], s.Where[prefix+"_BASE64"]
		if b.File != "" && (a.File == "" || b.Line > a.Line || b.File != a.File) {
			return prefix + "_BASE64"
		}
		return prefix
	}
	if err := ap.finishGPG(s); err != nil {
		return err
	}
	if len(s.Keys.Key) == 0 && !s.GPG.Enabled {
		return pos{s.File, s.Line}.errorf(ErrStanza, "SOURCE", "add KEY_BASE64 and HMAC_KEY_BASE64 ("+keygenFix+"), or GnuPG keys (GPG_DECRYPT_ID with GPG_DECRYPT_PW or GPG_ALLOW_NO_PW Y)",
			"stanza #%d (SOURCE %s) has no KEY or KEY_BASE64", s.Num, s.SourceText)
	}
	if n := len(s.Keys.Key); n > MaxKeyLen {
		k := keyVar(false)
		return at(k).errorf(ErrValue, k, keygenFix, "key is %d bytes; Rijndael keys are 1..%d bytes", n, MaxKeyLen)
	}
	if n := len(s.Keys.HMACKey); n > MaxHMACKeyLen {
		k := keyVar(true)
		return at(k).errorf(ErrValue, k, keygenFix, "HMAC key is %d bytes; at most %d are allowed", n, MaxHMACKeyLen)
	}
	if s.Keys.HMACKey != nil && bytes.Equal(s.Keys.Key, s.Keys.HMACKey) {
		k := keyVar(true)
		return at(k).errorf(ErrValue, k, keygenFix, "the HMAC key equals the encryption key; they must differ")
	}
	if s.Keys.Mode == 0 {
		s.Keys.Mode = spa.CBC
	}
	if s.Keys.HMACType == 0 && s.Keys.HMACKey != nil {
		s.Keys.HMACType = spa.SHA256
	}
	if s.Keys.Mode == spa.Legacy && len(s.Keys.Key) > 16 {
		ap.warns = append(ap.warns, at("ENCRYPTION_MODE").warn("ENCRYPTION_MODE", "legacy mode uses only the first 16 bytes of the %d-byte key", len(s.Keys.Key)))
		s.Keys.Key = s.Keys.Key[:16] // as fwknopd does
	}
	if s.Keys.HMACKey == nil && len(s.Keys.Key) > 0 {
		ap.warns = append(ap.warns, pos{s.File, s.Line}.warn("SOURCE", "stanza #%d has no HMAC key: packets are decrypted without being authenticated first; add HMAC_KEY_BASE64", s.Num))
	}
	if err := finishCycle(s, at); err != nil {
		return err
	}
	if s.FWAccessTimeout <= 0 {
		s.FWAccessTimeout = DefaultFWAccessTimeout
	}
	if s.MaxFWTimeout <= 0 {
		s.MaxFWTimeout = DefaultMaxFWTimeout
	}
	if s.MaxFWTimeout < s.FWAccessTimeout {
		ap.warns = append(ap.warns, at("MAX_FW_TIMEOUT").warn("MAX_FW_TIMEOUT", "is below FW_ACCESS_TIMEOUT; MAX_FW_TIMEOUT is honoured"))
	}
	if !s.RequireSourceAddress {
		ap.warns = append(ap.warns, pos{s.File, s.Line}.warn("SOURCE", "REQUIRE_SOURCE_ADDRESS not enabled for stanza #%d", s.Num))
	}
	return nil
}

// finishCycle checks a stanza's command cycle as fwknopd does: CMD_CYCLE_OPEN and
// CMD_CYCLE_CLOSE come together, and CMD_CYCLE_TIMER is needed unless the close command is
// NONE (which it turns into "").
func finishCycle(s *Stanza, at func(string) pos) error {
	c := &s.Cmd
	switch {
	case c.CycleOpen == "" && c.CycleClose == "":
		return nil // a lone CMD_CYCLE_TIMER does nothing, in fwknopd too
	case c.CycleOpen == "":
		return at("CMD_CYCLE_CLOSE").errorf(ErrValue, "CMD_CYCLE_CLOSE", "add CMD_CYCLE_OPEN", "CMD_CYCLE_CLOSE without CMD_CYCLE_OPEN")
	case c.CycleClose == "":
		return at("CMD_CYCLE_OPEN").errorf(ErrValue, "CMD_CYCLE_OPEN", "add CMD_CYCLE_CLOSE (NONE for no close command)", "CMD_CYCLE_OPEN without CMD_CYCLE_CLOSE")
	}
	if strings.HasPrefix(c.CycleClose, "NONE") { // fwknopd compares the first four bytes
		c.CycleClose = ""
		return nil
	}
	if c.CycleTimer <= 0 {
		return at("CMD_CYCLE_CLOSE").errorf(ErrValue, "CMD_CYCLE_TIMER", "add CMD_CYCLE_TIMER (seconds until CMD_CYCLE_CLOSE runs)", "a command cycle with a close command needs CMD_CYCLE_TIMER")
	}
	return nil
}
