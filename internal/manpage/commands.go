package manpage

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/cmd/connect"
	"github.com/sesame-spa/sesame/internal/cmd/decode"
	"github.com/sesame-spa/sesame/internal/cmd/keygen"
	"github.com/sesame-spa/sesame/internal/cmd/knock"
	"github.com/sesame-spa/sesame/internal/cmd/server"
	"github.com/sesame-spa/sesame/internal/cmd/shield"
	"github.com/sesame-spa/sesame/internal/cmd/sshproxy"
	"github.com/sesame-spa/sesame/internal/demo"
	"github.com/sesame-spa/sesame/internal/fwconf"
)

// mainFunc is a subcommand's Main.
type mainFunc func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// source is one subcommand as cmd/sesame registers it (name and summary must match
// cmd/sesame/commands.go; cmd/sesame's tests check that they do).
type source struct {
	name, summary, alias string
	flags                func() *pflag.FlagSet
	main                 mainFunc
}

var sources = []source{
	{"server", "the SPA server (fwknopd)", "fwknopd", server.FlagSet, server.Main},
	{"knock", "send an SPA packet (fwknop's client)", "fwknop", knock.FlagSet, knock.Main},
	{"ssh-proxy", "knock, then relay stdio to the opened port (ssh ProxyCommand)", "", sshproxy.FlagSet, sshproxy.Main},
	{"decode", "inspect one SPA packet: verify, decrypt and print its fields", "", decode.FlagSet, decode.Main},
	{"keygen", "generate fwknop keys (KEY_BASE64 / HMAC_KEY_BASE64)", "", keygen.FlagSet, keygen.Main},
	{"shield", "put a TCP-MD5 signature requirement in front of a service", "", shield.FlagSet, shield.Main},
	{"connect", "TCP-MD5 client: relay stdio or forward a local port", "", connect.FlagSet, connect.Main},
	{"demo", "a narrated knock-and-connect tour in throwaway network namespaces (root)", "", demo.FlagSet, demo.Main},
}

// Commands returns sesame's subcommands, each with its real flag set and the parsed output of
// its --help (run in process, writing only to buffers). The error names a command whose help
// has no usage line.
func Commands() ([]Command, error) {
	var cmds []Command
	for _, s := range sources {
		var out bytes.Buffer
		s.main([]string{"--help"}, strings.NewReader(""), &out, &out)
		h, ok := ParseHelp(out.String())
		if !ok {
			return nil, fmt.Errorf("manpage: sesame %s --help printed no usage line: %q", s.name, out.String())
		}
		cmds = append(cmds, Command{Name: s.name, Summary: s.summary, Alias: s.alias, Flags: s.flags(), Help: h})
	}
	return cmds, nil
}

// Pages renders all of sesame's pages from the real commands and fwconf's tables.
func Pages(m Meta) ([]Page, error) {
	cmds, err := Commands()
	if err != nil {
		return nil, err
	}
	var srv Command
	for _, c := range cmds {
		if c.Name == "server" {
			srv = c
		}
	}
	return []Page{Sesame(cmds, m), Server(srv, m), Conf(fwconf.Variables, fwconf.SesameVars, m)}, nil
}
