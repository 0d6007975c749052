package fwconf

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// checkMD5 validates SESAME_MD5_LISTEN and SESAME_MD5_UPSTREAM: both or neither, the listen
// address an IP (or nothing) and a port, the upstream a host and a port.
func (s *Server) checkMD5() error {
	lv, lp := s.value("SESAME_MD5_LISTEN")
	uv, up := s.value("SESAME_MD5_UPSTREAM")
	switch {
	case lv == "" && uv == "":
		return nil
	case uv == "":
		return lp.errorf(ErrValue, "SESAME_MD5_LISTEN", "set SESAME_MD5_UPSTREAM too (where signed connections go)",
			"is set but SESAME_MD5_UPSTREAM is not")
	case lv == "":
		return up.errorf(ErrValue, "SESAME_MD5_UPSTREAM", "set SESAME_MD5_LISTEN too (the address the MD5 listener binds)",
			"is set but SESAME_MD5_LISTEN is not")
	}
	if err := checkHostPort(lv, true); err != nil {
		return lp.errorf(ErrValue, "SESAME_MD5_LISTEN", `write e.g. "0.0.0.0:2222", "[::]:2222" or ":2222"`, "%q: %v", lv, err)
	}
	if err := checkHostPort(uv, false); err != nil {
		return up.errorf(ErrValue, "SESAME_MD5_UPSTREAM", `write e.g. "127.0.0.1:22"`, "%q: %v", uv, err)
	}
	return nil
}

// checkHostPort checks "HOST:PORT" with a port in 1..65535. With ipOnly the host must be an IP
// address without a zone, or empty.
func checkHostPort(v string, ipOnly bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	switch {
	case ipOnly && host != "":
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("host %q is not an IP address", host)
		}
	case !ipOnly && host == "":
		return fmt.Errorf("no host")
	}
	return nil
}
