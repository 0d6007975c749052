package fwconf

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors wrapped by every *Error, for callers that branch.
var (
	// ErrSyntax: a line is not "NAME value".
	ErrSyntax = errors.New("syntax error")
	// ErrValue: a value does not parse or is out of range.
	ErrValue = errors.New("invalid value")
	// ErrUnsupported: a variable fwknopd knows but sesame does not implement (see Variables).
	ErrUnsupported = errors.New("not supported by sesame")
	// ErrPlaceholder: a key left at the shipped __CHANGEME__ value.
	ErrPlaceholder = errors.New("key not set")
	// ErrInclude: an %include, %include_folder or %include_keys failed.
	ErrInclude = errors.New("include failed")
	// ErrStanza: an access stanza is incomplete or inconsistent, or there is none.
	ErrStanza = errors.New("invalid access stanza")
)

// Error is a configuration error. Its text names the file, line, variable and the fix:
//
//	access.conf:7: KEY_BASE64: value is not valid base64; generate keys with 'sesame keygen'
type Error struct {
	File string // as given to the loader
	Line int    // 1-based; 0 when the error is not about one line
	Var  string // "" when not about one variable
	Msg  string // what is wrong
	Fix  string // what to do; "" when obvious
	Err  error  // one of the sentinels above, or an underlying error
}

func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Var != "" {
		s += ": " + e.Var
	}
	s += ": " + e.Msg
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is something fwknopd would accept but that deserves the operator's attention: an
// unknown variable, a file readable by others, a setting with no effect in sesame.
type Warning struct {
	File string
	Line int // 0 when not about one line
	Var  string
	Msg  string
}

func (w Warning) String() string {
	return (&Error{File: w.File, Line: w.Line, Var: w.Var, Msg: w.Msg}).Error()
}

// pos is where a value came from.
type pos struct {
	File string
	Line int
}

func (p pos) errorf(sentinel error, name, fix, format string, args ...any) *Error {
	return &Error{File: p.File, Line: p.Line, Var: name, Msg: fmt.Sprintf(format, args...), Fix: fix, Err: sentinel}
}

func (p pos) warn(name, format string, args ...any) Warning {
	return Warning{File: p.File, Line: p.Line, Var: name, Msg: fmt.Sprintf(format, args...)}
}

// maxErrors is how many errors one load reports; further ones are counted.
const maxErrors = 100

// errList collects the errors of a load, so that one run reports every mistake (each an
// *Error naming file, line and fix) instead of one per run.
type errList struct {
	errs []error
	more int
}

// add records err (nil is ignored). An errors.Join from a nested load is flattened.
func (l *errList) add(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			l.add(e)
		}
		return
	}
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, err)
	} else {
		l.more++
	}
}

// err is nil, the one error, or all of them joined (one line each, file order).
func (l *errList) err() error {
	switch {
	case len(l.errs) == 0:
		return nil
	case len(l.errs) == 1:
		return l.errs[0]
	}
	errs := l.errs
	if l.more > 0 {
		first := &Error{}
		asError(errs[0], &first)
		errs = append(errs[:len(errs):len(errs)], &Error{File: first.File, Msg: fmt.Sprintf("%d more errors not shown", l.more), Err: first.Err})
	}
	return errors.Join(errs...)
}

// asError is errors.As for *Error.
func asError(err error, target **Error) bool { return errors.As(err, target) }
