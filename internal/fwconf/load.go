package fwconf

// Load reads fwknopd.conf at confPath, then the access stanzas it names (ACCESS_FOLDER when
// set, else ACCESS_FILE; command-line -a and --access-folder go in opts.Overrides as
// ACCESS_FILE and ACCESS_FOLDER). Warnings from both are returned together.
func Load(confPath string, opts Options) (*Server, []*Stanza, []Warning, error) {
	srv, warns, err := LoadServer(confPath, opts)
	if err != nil {
		return nil, nil, warns, err
	}
	st, w, err := srv.LoadAccess(opts)
	warns = append(warns, w...)
	if err != nil {
		return nil, nil, warns, err
	}
	return srv, st, warns, nil
}
