package knock

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ResolveMyIP asks url (an HTTP(S) "what is my IP" service, fwknop's -R) for the caller's
// address: it GETs the URL with the User-Agent userAgent (DefaultUserAgent if empty) and
// returns the first word of the body that parses as an IPv4 or IPv6 address. The request
// times out after 10 s.
func ResolveMyIP(ctx context.Context, url, userAgent string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve URL %q: %w", url, err)
	}
	if userAgent == "" {
		userAgent = DefaultUserAgent
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve own IP via %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return netip.Addr{}, fmt.Errorf("resolve own IP via %s: HTTP %s", url, resp.Status)
	}
	return parseMyIP(io.LimitReader(resp.Body, 64<<10), url)
}

func parseMyIP(r io.Reader, url string) (netip.Addr, error) {
	sc := bufio.NewScanner(r)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		w := strings.Trim(sc.Text(), "<>\"',;()[]")
		if a, err := netip.ParseAddr(w); err == nil && a.Zone() == "" {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("resolve own IP via %s: no IP address in the reply", url)
}
