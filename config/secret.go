package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Secret says where a secret is kept: a file or an environment variable.
// It never holds the secret itself, so a Config can be printed, logged or
// compared without leaking anything; Read fetches the value when it is
// needed, which also picks up a rotated file without a reload.
type Secret struct {
	File string // path (joined to the config's directory); "" when Env is used
	Env  string // variable name, from "${NAME}"; "" when File is used
}

// IsSet reports whether the secret was configured.
func (s Secret) IsSet() bool { return s.File != "" || s.Env != "" }

// Read returns the secret value: the file's content without surrounding
// white space (files written by editors and `echo` end in a newline), or the
// variable's value. Errors name the file or variable, never the value.
func (s Secret) Read() (string, error) {
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("read secret: %s is empty", s.File)
		}
		return v, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("read secret: environment variable %s is not set", s.Env)
		}
		if strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("read secret: environment variable %s is empty", s.Env)
		}
		return v, nil
	}
	return "", errors.New("read secret: none configured")
}

// String describes where the secret comes from, never its value.
func (s Secret) String() string {
	switch {
	case s.File != "":
		return "file " + s.File
	case s.Env != "":
		return "${" + s.Env + "}"
	}
	return "none"
}

var envRefRE = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// secretRef turns the pair of keys of one secret (`token: ${ENV}` and
// `token_file: PATH`) into a Secret and checks that it can be read now, so
// `qodwatch check` catches a missing file or variable. The value read is
// thrown away.
func (r *resolver) secretRef(path, inline, file string) Secret {
	name := path[strings.LastIndexByte(path, '.')+1:]
	switch {
	case inline != "" && file != "":
		r.d.errorAt(path, "set either %s or %s_file, not both", name, name)
		return Secret{}
	case inline != "":
		m := envRefRE.FindStringSubmatch(inline)
		if m == nil {
			// Never echo the value: it may be the secret itself.
			r.d.errorAt(path, "secrets are not written into the config: use %s: ${ENV_VAR} (read from the environment) or %s_file: /path/to/file", name, name)
			return Secret{}
		}
		s := Secret{Env: m[1]}
		if _, err := s.Read(); err != nil {
			r.d.errorAt(path, "%s", strings.TrimPrefix(err.Error(), "read secret: "))
		}
		return s
	case file != "":
		s := Secret{File: r.filePath(path+"_file", file)}
		if s.File == "" {
			return Secret{}
		}
		r.checkSecretFile(path+"_file", s)
		return s
	}
	return Secret{}
}

func (r *resolver) checkSecretFile(path string, s Secret) {
	fi, err := os.Stat(s.File)
	switch {
	case err != nil:
		r.d.errorAt(path, "%s", describeFileError(err))
		return
	case fi.IsDir():
		r.d.errorAt(path, "%s is a directory, want a file", s.File)
		return
	}
	if _, err := s.Read(); err != nil {
		r.d.errorAt(path, "%s", strings.TrimPrefix(err.Error(), "read secret: "))
	}
}

// describeFileError shortens os errors: "open /x: no such file or
// directory" reads better as "/x does not exist".
func describeFileError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return pe.Path + " does not exist"
		case errors.Is(err, os.ErrPermission):
			return pe.Path + " is not readable (permission denied)"
		}
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}
