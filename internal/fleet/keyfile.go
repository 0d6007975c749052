package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// ErrInsecureKeyFile is wrapped when a key file grants any access to group or others.
var ErrInsecureKeyFile = errors.New("key file is accessible by group or others (chmod 600 it)")

const maxKeyFile = 16 << 10

// ParseKeyFile reads the fleet key (SESAME_FLEET_KEY_FILE): one line of standard base64 text
// (padding optional; a final newline is allowed), at least 32 bytes once decoded, as
// `head -c 32 /dev/urandom | base64` makes it. The file must be a regular file owned by root
// or the effective user, not a link (package safefile), with no permission for group or
// others. Errors name the path; they never include key material.
func ParseKeyFile(path string) ([]byte, error) {
	data, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyText(data)
	if err != nil {
		return nil, fmt.Errorf("fleet key file %s: %w", path, err)
	}
	return key, nil
}

// parseKeyText decodes a key file's content (see ParseKeyFile).
func parseKeyText(data []byte) ([]byte, error) {
	text := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if strings.ContainsAny(text, "\r\n") {
		return nil, errors.New("more than one line")
	}
	text = strings.TrimSpace(text)
	key, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		key, err = base64.RawStdEncoding.Strict().DecodeString(text)
	}
	if err != nil {
		return nil, errors.New("not base64 text")
	}
	if len(key) < minKeyLen {
		return nil, fmt.Errorf("%d bytes once decoded, want at least %d (head -c 32 /dev/urandom | base64)", len(key), minKeyLen)
	}
	return key, nil
}

// readSecret reads a small secret file after safefile's checks and a mode check.
func readSecret(path string) ([]byte, error) {
	f, err := safefile.OpenRead(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s (mode %04o): %w", path, perm, ErrInsecureKeyFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

// LoadTLS builds the TLS configuration for a rediss URL: caFile (PEM) replaces the system
// roots when not empty; certFile and keyFile (PEM, both or neither) are the client
// certificate Redis asks for by default (tls-auth-clients). keyFile is checked as ParseKeyFile
// checks the fleet key file.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fleet: CA file %s: no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("fleet: a client certificate needs both the certificate and the key file")
	}
	if certFile != "" {
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: certificate file: %w", err)
		}
		keyPEM, err := readSecret(keyFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("fleet: client certificate %s, %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
