package fwconf

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sample is a valid value, other than the default, for a Supported variable; base holds lines
// both the baseline and the variant need (a variable that only works with another one).
type sample struct{ value, base string }

// supportedSamples has one entry per Supported variable. A variable flipped to Supported needs
// an entry here, and the entry must change what the parser returns.
var supportedSamples = map[string]sample{
	// fwknopd.conf
	"PCAP_INTF": {value: "vsrv"}, "PCAP_FILTER": {value: "udp port 1"},
	"ENABLE_PCAP_ANY_DIRECTION": {value: "Y"}, "EXIT_AT_INTF_DOWN": {value: "Y"},
	"ENABLE_SPA_PACKET_AGING": {value: "N"}, "MAX_SPA_PACKET_AGE": {value: "30"},
	"ENABLE_DIGEST_PERSISTENCE": {value: "N"}, "ENABLE_UDP_SERVER": {value: "Y"}, "UDPSERV_PORT": {value: "1234"},
	"ENABLE_SPA_OVER_HTTP": {value: "Y"}, "ALLOW_ANY_USER_AGENT": {value: "Y"}, "ENABLE_X_FORWARDED_FOR": {value: "Y"},
	"ENABLE_DESTINATION_RULE": {value: "Y"},
	"ENABLE_TCP_SERVER":       {value: "Y"}, "TCPSERV_PORT": {value: "8080"},
	"FWKNOP_RUN_DIR": {value: "/tmp/r"}, "ACCESS_FILE": {value: "/tmp/a.conf"}, "ACCESS_FOLDER": {value: "/tmp/a.d"},
	"FWKNOP_PID_FILE": {value: "/tmp/p.pid"}, "DIGEST_FILE": {value: "/tmp/d.cache"},
	"FLUSH_IPT_AT_INIT": {value: "Y"}, "FLUSH_IPT_AT_EXIT": {value: "Y"},
	"SESAME_GUARD_PORTS": {value: "tcp/22"}, "SESAME_HOST_CHAIN": {value: "iptables"},
	"SESAME_TABLE": {value: "other"}, "SESAME_TABLE_OWNER": {value: "N"}, "SESAME_REPLAY_MARGIN": {value: "5"},
	"SESAME_MD5_LISTEN":          {value: "127.0.0.1:2223", base: "SESAME_MD5_LISTEN 127.0.0.1:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n"},
	"SESAME_METRICS_LISTEN":      {value: "127.0.0.1:9464"},
	"PCAP_FILE":                  {value: "/tmp/knocks.pcap"},
	"SESAME_MD5_UPSTREAM":        {value: "127.0.0.1:23", base: "SESAME_MD5_LISTEN 127.0.0.1:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n"},
	"SESAME_FLEET_REDIS":         {value: "redis://10.0.0.9:6379", base: "SESAME_FLEET_KEY_FILE /k\n"},
	"SESAME_FLEET_KEY_FILE":      {value: "/k2", base: fleetBase},
	"SESAME_FLEET_GROUP":         {value: "edge", base: fleetBase},
	"SESAME_FLEET_ON_ERROR":      {value: "local", base: fleetBase},
	"SESAME_FLEET_TIMEOUT":       {value: "500", base: fleetBase},
	"SESAME_FLEET_MAX_SKEW":      {value: "5000", base: fleetBase},
	"SESAME_FLEET_WAIT_REPLICAS": {value: "1", base: fleetBase},
	"SESAME_FLEET_NAME":          {value: "gw-a", base: fleetBase},
	"SESAME_FLEET_TLS_CA":        {value: "/ca.pem", base: fleetTLSBase},
	"SESAME_FLEET_TLS_CERT":      {value: "/c2.pem", base: fleetTLSBase + "SESAME_FLEET_TLS_CERT /c.pem\nSESAME_FLEET_TLS_KEY /c.key\n"},
	"SESAME_FLEET_TLS_KEY":       {value: "/c2.key", base: fleetTLSBase + "SESAME_FLEET_TLS_CERT /c.pem\nSESAME_FLEET_TLS_KEY /c.key\n"},
	"ENABLE_IPT_FORWARDING":      {value: "Y"}, "ENABLE_IPT_LOCAL_NAT": {value: "Y"}, "ENABLE_IPT_SNAT": {value: "Y"},
	"SNAT_TRANSLATE_IP": {value: "192.0.2.9", base: "ENABLE_IPT_SNAT Y\n"}, "ENABLE_NAT_DNS": {value: "N"},
	// access.conf
	"FORCE_NAT": {value: "192.0.2.5 22"}, "FORCE_SNAT": {value: "192.0.2.6"}, "FORCE_MASQUERADE": {value: "Y"},
	"DISABLE_DNAT": {value: "Y"}, "FORWARD_ALL": {value: "Y"},
	"SOURCE": {value: "192.0.2.0/24"}, "DESTINATION": {value: "10.99.0.1"},
	"OPEN_PORTS": {value: "tcp/22"}, "RESTRICT_PORTS": {value: "tcp/23"},
	"KEY": {value: "otherkey"}, "KEY_BASE64": {value: "b3RoZXJrZXk="},
	"HMAC_KEY": {value: "otherhmac"}, "HMAC_KEY_BASE64": {value: "b3RoZXJobWFj"},
	"HMAC_DIGEST_TYPE": {value: "sha512"}, "ENCRYPTION_MODE": {value: "ctr"},
	"FW_ACCESS_TIMEOUT": {value: "15"}, "MAX_FW_TIMEOUT": {value: "100"},
	"REQUIRE_USERNAME": {value: "root"}, "REQUIRE_SOURCE_ADDRESS": {value: "Y"}, "REQUIRE_SOURCE": {value: "Y"},
	"ACCESS_EXPIRE": {value: "12/31/2030"}, "ACCESS_EXPIRE_EPOCH": {value: "1924905600"},
	"SESAME_REQUIRE_SOURCE_MATCH": {value: "Y"}, "SESAME_MD5": {value: "Y"},
	"GPG_HOME_DIR": {value: "/srv/gnupg"}, "GPG_EXE": {value: "/usr/local/bin/gpg"},
	"GPG_DECRYPT_ID":  {value: "53F3BA14"},
	"GPG_DECRYPT_PW":  {value: "secret", base: "GPG_REMOTE_ID 48290C42\n"},
	"GPG_ALLOW_NO_PW": {value: "Y", base: "GPG_REMOTE_ID 48290C42\n"},
	"GPG_REQUIRE_SIG": {value: "Y"}, "GPG_DISABLE_SIG": {value: "Y"}, "GPG_IGNORE_SIG_VERIFY_ERROR": {value: "Y"},
	"GPG_REMOTE_ID":   {value: "48290C42"},
	"SUDO_EXE":        {value: "/usr/local/bin/sudo"},
	"ENABLE_CMD_EXEC": {value: "Y"}, "ENABLE_CMD_SUDO_EXEC": {value: "Y"},
	"CMD_EXEC_USER": {value: "nobody"}, "CMD_EXEC_GROUP": {value: "nogroup"},
	"CMD_SUDO_EXEC_USER": {value: "nobody"}, "CMD_SUDO_EXEC_GROUP": {value: "nogroup"},
	"CMD_CYCLE_OPEN":     {value: "/bin/echo $IP", base: cycleBase},
	"CMD_CYCLE_CLOSE":    {value: "/bin/echo close $IP", base: cycleBase},
	"CMD_CYCLE_TIMER":    {value: "20", base: cycleBase},
	"GPG_FINGERPRINT_ID": {value: "4517B33E0B11F039FBCEC5035F32373D48290C42"},
}

const (
	fleetBase    = "SESAME_FLEET_REDIS redis://10.0.0.9\nSESAME_FLEET_KEY_FILE /k\n"
	fleetTLSBase = "SESAME_FLEET_REDIS rediss://10.0.0.9\nSESAME_FLEET_KEY_FILE /k\n"
)

const cycleBase = "CMD_CYCLE_OPEN /bin/true\nCMD_CYCLE_CLOSE /bin/false\nCMD_CYCLE_TIMER 10\n"

const baseStanza = "SOURCE 10.0.0.0/8\nKEY basekey\nHMAC_KEY basehmac\n"

// parsed is the outcome of parsing one variant: the typed fields (positions, raw text and the
// file name cleared), the warnings and the error.
type parsed struct {
	typed reflect.Value
	warns []Warning
	err   error
}

func parseServerVariant(text string) parsed {
	s, w, err := ParseServer("f.conf", []byte(text), Options{})
	if err != nil {
		return parsed{err: err, warns: w}
	}
	c := *s
	c.File, c.Raw, c.Where = "", nil, nil
	return parsed{typed: reflect.ValueOf(c), warns: w}
}

func parseAccessVariant(text string) parsed {
	st, w, err := ParseAccess("a.conf", []byte(text), Options{})
	if err != nil {
		return parsed{err: err, warns: w}
	}
	c := *st[0]
	c.File, c.Line, c.SourceText, c.Raw, c.Where = "", 0, "", nil, nil
	return parsed{typed: reflect.ValueOf(c), warns: w}
}

// changedFields lists the fields of a and b (same struct type) that differ.
func changedFields(a, b reflect.Value) []string {
	var out []string
	for i := range a.NumField() {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, a.Type().Field(i).Name)
		}
	}
	return out
}

// nonDefault returns a value that differs from v's default.
func nonDefault(v Variable) string {
	switch v.Default {
	case "Y":
		return "N"
	case "N":
		return "Y"
	}
	return "sesame-test-value"
}

// TestVariablesAgreeWithCode checks every Variables entry against what the parser and the
// rest of sesame do with the variable:
//
//   - Supported: a sample value changes a typed field of Server or Stanza, and every field it
//     changes is read by a package that imports fwconf (directly, or through an exported
//     fwconf method such as Stanza.Matches that such a package calls);
//   - NoEffect: a non-default value is accepted with a "has no effect" warning and changes no
//     typed field;
//   - DefaultOnly: the default is accepted and changes nothing, any other value is an
//     ErrUnsupported error;
//   - Unsupported: any value is an ErrUnsupported error;
//   - and no variable other than a Supported one is named in fwconf's code outside the table.
func TestVariablesAgreeWithCode(t *testing.T) {
	reads := fieldReads(t)
	for _, name := range sortedKeys(Variables) {
		v := Variables[name]
		for _, scope := range []Scope{InServer, InAccess} {
			if v.Scope&scope == 0 {
				continue
			}
			where := "fwknopd.conf"
			variant := func(base, line string) parsed {
				if scope == InAccess {
					if name == "SOURCE" && line != "" {
						return parseAccessVariant(strings.Replace(baseStanza+base, "SOURCE 10.0.0.0/8", line, 1))
					}
					return parseAccessVariant(baseStanza + base + line + "\n")
				}
				return parseServerVariant(base + line + "\n")
			}
			if scope == InAccess {
				where = "access.conf"
			}
			t.Run(where+"/"+name, func(t *testing.T) {
				smp, hasSample := supportedSamples[name]
				baseline := variant(smp.base, "")
				if baseline.err != nil {
					t.Fatalf("baseline: %v", baseline.err)
				}
				switch v.Support {
				case Supported:
					if !hasSample {
						t.Fatalf("Supported but no entry in supportedSamples: add a non-default value that changes what the parser returns")
					}
					got := variant(smp.base, name+" "+smp.value)
					if got.err != nil {
						t.Fatalf("sample %q: %v", smp.value, got.err)
					}
					changed := changedFields(baseline.typed, got.typed)
					if len(changed) == 0 {
						t.Fatalf("Supported, but %s %s changes no typed field: the parser ignores it (Note: %q)", name, smp.value, v.Note)
					}
					for _, f := range changed {
						if !reads[f] {
							t.Errorf("Supported, but field %s (set by %s) is read by nothing outside the parser", f, name)
						}
					}
				case NoEffect:
					if hasSample {
						t.Errorf("NoEffect but listed in supportedSamples")
					}
					val := nonDefault(v)
					got := variant("", name+" "+val)
					if got.err != nil {
						t.Fatalf("%s %s: %v", name, val, got.err)
					}
					if c := changedFields(baseline.typed, got.typed); len(c) > 0 {
						t.Errorf("NoEffect, but %s %s changes %v (Note: %q)", name, val, c, v.Note)
					}
					if !slices.ContainsFunc(got.warns, func(w Warning) bool { return strings.Contains(w.Msg, "has no effect") }) {
						t.Errorf("NoEffect, but %s %s gives no \"has no effect\" warning: %v", name, val, got.warns)
					}
				case DefaultOnly:
					got := variant("", name+" "+v.Default)
					if got.err != nil {
						t.Fatalf("the default %q is refused: %v", v.Default, got.err)
					}
					if c := changedFields(baseline.typed, got.typed); len(c) > 0 {
						t.Errorf("DefaultOnly, but the default changes %v", c)
					}
					checkRefused(t, variant, name, nonDefault(v))
				case Unsupported:
					checkRefused(t, variant, name, "x")
				}
			})
		}
	}
	for name := range supportedSamples {
		if v, ok := Variables[name]; !ok || v.Support != Supported {
			t.Errorf("supportedSamples lists %s, which is not a Supported variable", name)
		}
	}
	for _, name := range namesInCode(t) {
		if v, ok := Variables[name]; ok && v.Support != Supported {
			t.Errorf("fwconf's code names %s, which is %s: the parser must not act on it", name,
				[...]string{Supported: "Supported", NoEffect: "NoEffect", DefaultOnly: "DefaultOnly", Unsupported: "Unsupported"}[v.Support])
		}
	}
}

// checkRefused checks that name set to val is refused with ErrUnsupported naming it; for a
// variable in needs, only while its switch is on: with the switch off it is a warning.
func checkRefused(t *testing.T, variant func(base, line string) parsed, name, val string) {
	t.Helper()
	sw, dep := needs[name]
	base := ""
	if dep {
		base = sw + " Y\n"
		got := variant("", name+" "+val)
		if got.err != nil || !slices.ContainsFunc(got.warns, func(w Warning) bool {
			return w.Var == name && strings.Contains(w.Msg, "has no effect in sesame while "+sw+" is N")
		}) {
			t.Errorf("%s %s with %s off: err %v, warnings %v; want only a warning", name, val, sw, got.err, got.warns)
		}
	}
	got := variant(base, name+" "+val)
	if !errors.Is(got.err, ErrUnsupported) || !strings.Contains(got.err.Error(), ": "+name+": ") {
		t.Errorf("%s %s (base %q) gives %v, want ErrUnsupported naming %s", name, val, base, got.err, name)
	}
}

// moduleFiles parses every non-test Go file of the module (fwconf's directory is ../..).
func moduleFiles(t *testing.T) (fset *token.FileSet, files map[string][]*ast.File) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	fset = token.NewFileSet()
	files = map[string][]*ast.File{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		files[rel] = append(files[rel], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fset, files
}

const fwconfDir = "internal/fwconf"

// fieldReads returns the names read (as x.Name, not assigned) by the packages that import
// fwconf (some file of the package does), plus the fields read by fwconf's exported methods and functions (other than String,
// the parsers and the dumps) that those packages call, such as Stanza.Matches or
// Server.LoadAccess.
func fieldReads(t *testing.T) map[string]bool {
	_, files := moduleFiles(t)
	outside := map[string]bool{}
	for dir, fs := range files {
		if dir == fwconfDir || !slices.ContainsFunc(fs, importsFwconf) {
			continue
		}
		for _, f := range fs { // the whole package: a file may use a stanza another file got
			collectReads(f, outside)
		}
	}
	reads := map[string]bool{}
	for k := range outside {
		reads[k] = true
	}
	for _, f := range files[fwconfDir] {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() || fn.Body == nil || !outside[fn.Name.Name] {
				continue
			}
			if n := fn.Name.Name; n == "String" || strings.HasPrefix(n, "Parse") || strings.HasPrefix(n, "Dump") {
				continue
			}
			collectReads(fn.Body, reads)
		}
	}
	return reads
}

func importsFwconf(f *ast.File) bool {
	for _, imp := range f.Imports {
		if strings.HasSuffix(strings.Trim(imp.Path.Value, `"`), "/"+fwconfDir) {
			return true
		}
	}
	return false
}

// collectReads adds the Sel names of the selector expressions under n that are not assigned to.
func collectReads(n ast.Node, into map[string]bool) {
	assigned := map[*ast.SelectorExpr]bool{}
	ast.Inspect(n, func(n ast.Node) bool {
		if a, ok := n.(*ast.AssignStmt); ok {
			for _, l := range a.Lhs {
				if s, ok := l.(*ast.SelectorExpr); ok {
					assigned[s] = true
				}
			}
		}
		if s, ok := n.(*ast.SelectorExpr); ok && !assigned[s] {
			into[s.Sel.Name] = true
		}
		return true
	})
}

// namesInCode returns the upper-case string literals of fwconf's code outside the Variables
// and needs tables: the variables the parser refers to by name.
func namesInCode(t *testing.T) []string {
	_, files := moduleFiles(t)
	var names []string
	for _, f := range files[fwconfDir] {
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && (vs.Names[0].Name == "Variables" || vs.Names[0].Name == "needs") {
				return false
			}
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					names = append(names, s)
				}
			}
			return true
		})
	}
	return names
}
