package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/bcrypt"
)

// HashPassword returns the bcrypt hash (cost 12) of pw for the credentials file. An empty
// password, or one longer than 72 bytes (bcrypt ignores the rest), is refused.
func HashPassword(pw []byte) (string, error) {
	return hashPassword(pw, hashCost)
}

func hashPassword(pw []byte, cost int) (string, error) {
	switch {
	case len(pw) == 0:
		return "", errors.New("hash password: the password is empty")
	case len(pw) > maxPasswordLen:
		return "", fmt.Errorf("hash password: the password is %d bytes long; bcrypt uses at most %d", len(pw), maxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// SetPassword sets user's password in the credentials file at path, adding the user if
// missing and creating the file if it does not exist. See SetUser.
func SetPassword(path, user string, pw []byte) error {
	return SetUser(path, user, pw, nil)
}

// SetUser sets user's password and, when clients is not nil, the client id patterns it
// may connect with, in the credentials file at path. The other users and the rules are
// kept. The file is rewritten atomically (a temporary file renamed over it, mode 0600)
// and created if missing; a symbolic link is followed and its target rewritten.
//
// The rest of the file must be well-formed JSON of the file's schema, but its values are
// not checked, so SetUser can repair a user the server refuses (say, one with a
// plaintext password); check the result with ValidateFile. Two concurrent SetUser calls
// on one file may lose one of the updates.
func SetUser(path, user string, pw []byte, clients []string) error {
	return setUser(path, user, pw, clients, hashCost)
}

// setUser is SetUser hashing at the given bcrypt cost (tests use a cheap one).
func setUser(path, user string, pw []byte, clients []string, cost int) error {
	if err := checkUsername(user); err != nil {
		return fmt.Errorf("set user %q: %w", user, err)
	}
	if clients != nil {
		if len(clients) == 0 {
			return fmt.Errorf("set user %q: clients is empty", user)
		}
		for i, c := range clients {
			if _, err := compileClientPattern(c); err != nil {
				return fmt.Errorf("set user %q: clients[%d]: %w", user, i, err)
			}
		}
	}
	hash, err := hashPassword(pw, cost)
	if err != nil {
		return fmt.Errorf("set user %q: %w", user, err)
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	fd := &fileData{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("set user %q: %w", user, err)
	default:
		if fd, err = decodeFile(path, data); err != nil {
			return fmt.Errorf("set user %q: %w", user, err)
		}
	}
	if fd.Users == nil {
		fd.Users = map[string]*userData{}
	}
	u := fd.Users[user]
	if u == nil {
		u = &userData{}
		fd.Users[user] = u
	}
	u.Password = hash
	if clients != nil {
		u.Clients = append([]string(nil), clients...)
	}
	out, err := fd.encode()
	if err != nil {
		return fmt.Errorf("set user %q: %w", user, err)
	}
	if err := writeFileAtomic(path, out, 0o600); err != nil {
		return fmt.Errorf("set user %q: %w", user, err)
	}
	return nil
}

// ValidateFile reads and checks the credentials file at path as New would.
func ValidateFile(path string) error {
	return validateFile(path, minBcryptCost)
}

func validateFile(path string, minCost int) error {
	data, err := readFile(path)
	if err != nil {
		return err
	}
	_, err = parseRuleSet(path, data, minCost)
	return err
}

// writeFileAtomic writes data to a temporary file in path's directory, syncs it and
// renames it over path, so a reader sees the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	// Make the rename durable; not every platform can sync a directory, so failure to
	// open or sync it is not an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
