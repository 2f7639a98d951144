package cli

import (
	"regexp"
	"strings"
)

// fieldFlags maps the config fields a library's errors name (a Go field name, or a path such
// as "HTTP.WriteTimeout") to the flags that set them: the libraries speak of their config,
// the user of a command knows its flags.
type fieldFlags map[string]string

// fieldName is a field name or path as the libraries' errors write it; quoted is a value
// they quote (%q), which may hold any word, a field's name included.
var (
	fieldName = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)*\b`)
	quoted    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// rename returns err with every field it names outside quotes, and has a flag for, written
// as that flag. The result wraps err, so errors.Is and errors.As see what they saw before.
func (m fieldFlags) rename(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var b strings.Builder
	last := 0
	for _, q := range append(quoted.FindAllStringIndex(msg, -1), []int{len(msg), len(msg)}) {
		b.WriteString(fieldName.ReplaceAllStringFunc(msg[last:q[0]], func(f string) string {
			if flag, ok := m[f]; ok {
				return flag
			}
			return f
		}))
		b.WriteString(msg[q[0]:q[1]])
		last = q[1]
	}
	renamed := b.String()
	if renamed == msg {
		return err
	}
	return &renamedError{msg: renamed, err: err}
}

// renamedError is an error whose message names flags where the wrapped one named fields.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }
