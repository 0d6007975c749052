package knock

import (
	"fmt"
	"strings"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/internal/rcfile"
)

// saveStanza implements --save-rc-stanza: the options go to the stanza named by -n (or -D).
// Changing a variable of an existing stanza needs --force-stanza, or a "y" on the terminal
// (fwknop asks there too). code is -1 to go on with the knock.
func (c *cli) saveStanza(f *flags, o *knock.Options, rc *rcfile.File) int {
	if rc == nil {
		return c.errorf("--save-rc-stanza needs the rc file; drop --no-rc-file (or set HOME, or give --rc-file)")
	}
	name := f.stanza
	if name == "" {
		name = o.Server
	}
	if name == "" {
		return c.errorf("--save-rc-stanza needs a stanza name: give -n NAME (or -D)")
	}
	var ask rcfile.Confirm
	if !f.forceStanza && c.isTerminal() {
		ask = c.confirm
	}
	if err := rcfile.SaveStanza(rc.Path, o.Stanza(name), f.forceStanza, ask); err != nil {
		return c.errorf("%v", err)
	}
	if f.keyGen {
		fmt.Fprintf(c.stdout, "[+] Wrote Rijndael and HMAC keys to rc file: %s\n", rc.Path)
	} else {
		fmt.Fprintf(c.stdout, "[+] Wrote stanza [%s] to %s\n", name, rc.Path)
	}
	return -1
}

// confirm asks on the terminal whether to overwrite a variable of an existing stanza.
func (c *cli) confirm(stanza, name string) (bool, error) {
	fmt.Fprintf(c.stdout, "Stanza [%s] already sets %s. Overwrite it [N/y]? ", stanza, name)
	line, err := readLine(c.reader())
	if err != nil {
		return false, err
	}
	return strings.EqualFold(strings.TrimSpace(line), "y"), nil
}
