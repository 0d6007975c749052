package fwconf

import (
	"strings"
	"time"
)

// fleetVars are the fleet's variables besides SESAME_FLEET_REDIS, in the order their errors
// are reported.
var fleetVars = []string{"SESAME_FLEET_GROUP", "SESAME_FLEET_KEY_FILE", "SESAME_FLEET_ON_ERROR",
	"SESAME_FLEET_TIMEOUT", "SESAME_FLEET_MAX_SKEW", "SESAME_FLEET_WAIT_REPLICAS", "SESAME_FLEET_NAME",
	"SESAME_FLEET_TLS_CA", "SESAME_FLEET_TLS_CERT", "SESAME_FLEET_TLS_KEY"}

// fleetSchemes are the URL schemes package fleet accepts, and whether each uses TLS.
var fleetSchemes = map[string]bool{"redis": false, "rediss": true, "redis+sentinel": false, "rediss+sentinel": true}

const fleetURLFix = "write redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS), or redis+sentinel://HOST:26379[,HOST:26379...]/MASTER"

// resolveFleet fills the SESAME_FLEET_* fields and returns every error found. Whether the key
// file and the TLS files can be read is checked by the server, which reads them. A fleet
// variable set without SESAME_FLEET_REDIS is a warning: without it there is no fleet.
func (s *Server) resolveFleet() ([]Warning, []error) {
	var errs []error
	var warns []Warning
	str := func(name string) (string, pos) { v, p := s.value(name); return strings.TrimSpace(v), p }
	ms := func(name string, lo, hi int64) time.Duration {
		v, p := str(name)
		if v == "" {
			return 0
		}
		n, err := parseUint(v, lo, hi)
		if err != nil {
			errs = append(errs, p.errorf(ErrValue, name, "milliseconds", "%v", err))
		}
		return time.Duration(n) * time.Millisecond
	}
	name := func(varName string) string {
		v, p := str(varName)
		if v != "" && !validFleetName(v) {
			errs = append(errs, p.errorf(ErrValue, varName, "use 1 to 64 of A-Z a-z 0-9 . _ -", "%q is not a valid name", v))
		}
		return v
	}
	rv, rp := str("SESAME_FLEET_REDIS")
	s.FleetRedis = rv
	s.FleetGroup = name("SESAME_FLEET_GROUP")
	s.FleetKeyFile, _ = str("SESAME_FLEET_KEY_FILE")
	if v, p := str("SESAME_FLEET_ON_ERROR"); v != "" {
		switch lv := strings.ToLower(v); lv {
		case "closed", "local":
			s.FleetOnError = lv
		default:
			errs = append(errs, p.errorf(ErrValue, "SESAME_FLEET_ON_ERROR",
				"use closed (refuse knocks Redis cannot check) or local (fall back to this gateway's replay cache)", "%q is not closed or local", v))
		}
	}
	s.FleetTimeout = ms("SESAME_FLEET_TIMEOUT", 1, 60000)
	s.FleetMaxSkew = ms("SESAME_FLEET_MAX_SKEW", 1, 3600000)
	if v, p := str("SESAME_FLEET_WAIT_REPLICAS"); v != "" {
		n, err := parseUint(v, 0, 64)
		if err != nil {
			errs = append(errs, p.errorf(ErrValue, "SESAME_FLEET_WAIT_REPLICAS", "the number of replicas each write waits for (0: none)", "%v", err))
		}
		s.FleetWaitReplicas = int(n)
	}
	s.FleetName = name("SESAME_FLEET_NAME")
	s.FleetTLSCA, _ = str("SESAME_FLEET_TLS_CA")
	s.FleetTLSCert, _ = str("SESAME_FLEET_TLS_CERT")
	s.FleetTLSKey, _ = str("SESAME_FLEET_TLS_KEY")

	if rv == "" {
		for _, n := range fleetVars {
			if _, set := s.Raw[n]; set {
				warns = append(warns, pos(s.Where[n]).warn(n, "has no effect without SESAME_FLEET_REDIS"))
			}
		}
		return warns, errs
	}
	tlsOn := false
	if scheme, rest, ok := strings.Cut(rv, "://"); !ok {
		errs = append(errs, rp.errorf(ErrValue, "SESAME_FLEET_REDIS", fleetURLFix, "%q is not a URL", RedactURL(rv)))
	} else if t, known := fleetSchemes[strings.ToLower(scheme)]; !known {
		errs = append(errs, rp.errorf(ErrValue, "SESAME_FLEET_REDIS", fleetURLFix, "unknown scheme %q", scheme))
	} else if tlsOn = t; rest == "" || rest[0] == '/' {
		errs = append(errs, rp.errorf(ErrValue, "SESAME_FLEET_REDIS", fleetURLFix, "%q names no host", RedactURL(rv)))
	}
	if s.FleetKeyFile == "" {
		errs = append(errs, rp.errorf(ErrValue, "SESAME_FLEET_REDIS",
			"set SESAME_FLEET_KEY_FILE to a file made with `head -c 32 /dev/urandom | base64` (mode 600), the same on every gateway of the group",
			"is set but SESAME_FLEET_KEY_FILE is not"))
	}
	for _, n := range []string{"SESAME_FLEET_TLS_CA", "SESAME_FLEET_TLS_CERT", "SESAME_FLEET_TLS_KEY"} {
		if v, p := str(n); v != "" && !tlsOn {
			errs = append(errs, p.errorf(ErrValue, n, "use a rediss:// (or rediss+sentinel://) SESAME_FLEET_REDIS, or remove it",
				"TLS settings need a TLS URL"))
		}
	}
	if (s.FleetTLSCert == "") != (s.FleetTLSKey == "") {
		n := "SESAME_FLEET_TLS_CERT"
		if s.FleetTLSCert == "" {
			n = "SESAME_FLEET_TLS_KEY"
		}
		_, p := str(n)
		errs = append(errs, p.errorf(ErrValue, n, "set both SESAME_FLEET_TLS_CERT and SESAME_FLEET_TLS_KEY (the client certificate and its key), or neither",
			"is set without its pair"))
	}
	return warns, errs
}

// validFleetName is package fleet's rule for group and gateway names.
func validFleetName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// RedactURL replaces the password in a URL's user information by "xxxxx", for logs, messages
// and dumps (SESAME_FLEET_REDIS may hold the Redis password). Other text is returned as is.
func RedactURL(v string) string {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		return v
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return v
	}
	if end := strings.IndexAny(rest, "/?"); end >= 0 && end < at {
		return v
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return v
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
