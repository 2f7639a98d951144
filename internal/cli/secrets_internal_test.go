package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretFixture is a flag set with one secret flag, as a command defines it.
func secretFixture(t *testing.T) (*flag.FlagSet, *secretFlag) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var s secretFlag
	s.register(fs, "cluster-token", "the cluster token")
	return fs, &s
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretSources: a secret comes from its flag, its environment variable or its file
// (trimmed); the flag or variable together with the file is refused naming both, and no
// error shows the secret. Only the command-line form warns, naming the file and
// environment forms, and the warning does not show the secret either.
func TestSecretSources(t *testing.T) {
	const secret = "s3cret-cluster-token-0123"
	file := writeSecret(t, "  "+secret+"\n\n")
	for _, tc := range []struct {
		name    string
		env     string
		envFile string // SWITCHBOARD_CLUSTER_TOKEN_FILE
		args    []string
		want    string
		errWant []string
		warn    bool
	}{
		{name: "flag", args: []string{"--cluster-token", secret}, want: secret, warn: true},
		{name: "env", env: secret, want: secret},
		{name: "file", args: []string{"--cluster-token-file", file}, want: secret},
		{name: "file from env", envFile: file, want: secret},
		{name: "env file", args: []string{"--cluster-token-file", file}, env: "x", errWant: []string{"--cluster-token", "SWITCHBOARD_CLUSTER_TOKEN", "--cluster-token-file", "not both"}},
		{name: "flag and file", args: []string{"--cluster-token", secret, "--cluster-token-file", file},
			errWant: []string{"--cluster-token ", "--cluster-token-file", "not both"}, warn: true},
		{name: "missing file", args: []string{"--cluster-token-file", file + ".missing"}, errWant: []string{"--cluster-token-file", "no such file"}},
		{name: "empty file", args: []string{"--cluster-token-file", writeSecret(t, " \n")}, errWant: []string{"--cluster-token-file", "empty"}},
		{name: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("SWITCHBOARD_CLUSTER_TOKEN", tc.env)
			}
			if tc.envFile != "" {
				t.Setenv("SWITCHBOARD_CLUSTER_TOKEN_FILE", tc.envFile)
			}
			fs, s := secretFixture(t)
			if err := parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			warnSecrets(fs, slog.New(slog.NewTextHandler(&logged, nil)))
			got, err := s.get()
			switch {
			case tc.errWant != nil:
				var ue usageError
				if err == nil || !errors.As(err, &ue) {
					t.Fatalf("get = %q, %v; want a usage error", got, err)
				}
				for _, w := range tc.errWant {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error %q does not name %q", err, w)
					}
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q shows the secret", err)
				}
			case err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Fatalf("get = %q, want %q", got, tc.want)
			}
			out := logged.String()
			if tc.warn != strings.Contains(out, "level=WARN") {
				t.Fatalf("warned = %v, want %v: %q", !tc.warn, tc.warn, out)
			}
			if tc.warn && (!strings.Contains(out, "process list") || !strings.Contains(out, "--cluster-token-file") ||
				!strings.Contains(out, "SWITCHBOARD_CLUSTER_TOKEN")) {
				t.Fatalf("warning %q does not say why and what to use instead", out)
			}
			if strings.Contains(out, secret) {
				t.Fatalf("warning shows the secret: %q", out)
			}
		})
	}
}

// TestSecretNeverPrinted: the usage text shows no secret's value, even one that is set.
func TestSecretNeverPrinted(t *testing.T) {
	const secret = "s3cret-cluster-token-0123"
	fs, _ := secretFixture(t)
	if err := parse(fs, []string{"--cluster-token", secret}); err != nil {
		t.Fatal(err)
	}
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	if strings.Contains(usage.String(), secret) {
		t.Fatalf("usage shows the secret:\n%s", usage.String())
	}
	if f := fs.Lookup("cluster-token"); f.Value.String() != "" {
		t.Fatalf("the flag's String() = %q, want nothing", f.Value.String())
	}
}

// TestWorldReadableSecretFileWarns: a file of secrets (a --NAME-file, --api-tokens) that
// every user of the machine may read is named in a warning, with its mode; a private one,
// or a file flag that holds no secret, is not.
func TestWorldReadableSecretFileWarns(t *testing.T) {
	fs, _ := secretFixture(t)
	fs.String("api-tokens", "", "")
	fs.String("ca-file", "", "") // not a secret
	open := func(name string, mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token, tokens := open("token", 0o644), open("tokens", 0o604)
	if err := parse(fs, []string{"--cluster-token-file", token, "--api-tokens", tokens,
		"--ca-file", open("ca", 0o644)}); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	warnSecrets(fs, slog.New(slog.NewTextHandler(&logged, nil)))
	out := logged.String()
	for _, want := range []string{"--cluster-token-file " + token + " is readable by every user", "mode=-rw-r--r--",
		"--api-tokens " + tokens + " is readable by every user"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "level=WARN") != 2 {
		t.Errorf("want 2 warnings (not the CA file):\n%s", out)
	}
	for _, p := range []string{token, tokens} {
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	logged.Reset()
	warnSecrets(fs, slog.New(slog.NewTextHandler(&logged, nil)))
	if logged.Len() != 0 {
		t.Errorf("private files warned:\n%s", logged.String())
	}
}
