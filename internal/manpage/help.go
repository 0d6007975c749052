package manpage

import "strings"

// Help is what a command's --help output says besides its flag list.
type Help struct {
	Synopsis string     // the "usage:" line without "usage: " and without a trailing remark
	Remark   string     // a remark after the synopsis, "(fwknopd compatible)", without parentheses
	Paras    []HelpPara // the prose between the usage line and the flag list
}

// HelpPara is one paragraph of help prose: filled text, or indented example lines.
type HelpPara struct {
	Text    string   // filled text (lines joined with blanks); "" for an example
	Example []string // indented lines, indentation removed
}

// ParseHelp reads the --help output of a sesame subcommand: a first line "usage: SYNOPSIS",
// optionally followed by "   (REMARK)"; then paragraphs separated by blank lines, where lines
// indented by two or more blanks are examples; ending at a line "flags:" or at the first flag
// line (indented, starting with '-'). Text before the usage line is ignored. ok is false when
// there is no usage line.
func ParseHelp(out string) (h Help, ok bool) {
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	i := 0
	for ; i < len(lines); i++ {
		if s, found := strings.CutPrefix(lines[i], "usage: "); found {
			h.Synopsis = strings.TrimSpace(s)
			ok = true
			break
		}
	}
	if !ok {
		return Help{}, false
	}
	if syn, rest, found := strings.Cut(h.Synopsis, "   "); found {
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
			h.Synopsis, h.Remark = strings.TrimSpace(syn), strings.TrimSpace(rest[1:len(rest)-1])
		}
	}
	var text []string
	var example []string
	flush := func() {
		if len(text) > 0 {
			h.Paras = append(h.Paras, HelpPara{Text: strings.Join(text, " ")})
			text = nil
		}
		if len(example) > 0 {
			h.Paras = append(h.Paras, HelpPara{Example: example})
			example = nil
		}
	}
	for _, l := range lines[i+1:] {
		trimmed := strings.TrimSpace(l)
		if trimmed == "flags:" || trimmed == "options:" || (l != trimmed && strings.HasPrefix(trimmed, "-")) {
			break
		}
		switch {
		case trimmed == "":
			flush()
		case strings.HasPrefix(l, "  "):
			if len(text) > 0 {
				h.Paras = append(h.Paras, HelpPara{Text: strings.Join(text, " ")})
				text = nil
			}
			example = append(example, trimmed)
		default:
			if len(example) > 0 {
				h.Paras = append(h.Paras, HelpPara{Example: example})
				example = nil
			}
			text = append(text, trimmed)
		}
	}
	flush()
	return h, true
}
