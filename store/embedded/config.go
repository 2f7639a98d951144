package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config says where the store keeps its data and how it runs.
type Config struct {
	// Dir is the directory that holds the store's file. Open creates it if it is missing.
	// One process at a time may use it. Required.
	Dir string
	// Logger receives warnings the calls cannot return: a failed sweep, a full disk.
	// Nil discards them.
	Logger *slog.Logger
	// LockTimeout bounds how long Open waits for the directory's lock before it reports
	// that another process is using the directory. Zero means the default.
	LockTimeout time.Duration
	// SweepInterval is how often the sweeper deletes the messages whose expiry passed.
	// Zero means the default.
	SweepInterval time.Duration
	// MaxGroup caps how many operations one group commit (one transaction, one fsync)
	// holds. Zero means the default.
	MaxGroup int
	// ReserveBytes is the disk the store keeps in hand, in a file beside its database, so
	// that removals can still delete when the disk fills (see the package
	// documentation, Errors). Zero means the default.
	ReserveBytes int64
}

// Defaults applied by DefaultConfig and by Open to zero fields.
const (
	defaultLockTimeout   = 100 * time.Millisecond
	defaultSweepInterval = time.Minute
	defaultMaxGroup      = 256
	defaultReserveBytes  = 4 << 20
)

// DefaultConfig returns a Config with every default filled in except Dir, which the caller
// must set.
func DefaultConfig() Config {
	return Config{
		Dir:           "",                   // required: no default place for durable data
		Logger:        nil,                  // discard
		LockTimeout:   defaultLockTimeout,   // a directory in use fails Open at once, not after a hang
		SweepInterval: defaultSweepInterval, // expiries are minutes to days; Peek hides expired heads anyway
		MaxGroup:      defaultMaxGroup,      // bounds one commit's size and the wait behind it
		ReserveBytes:  defaultReserveBytes,  // a thousand pages: ample for removals and sweeps on a full disk
	}
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = defaultLockTimeout
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = defaultSweepInterval
	}
	if c.MaxGroup == 0 {
		c.MaxGroup = defaultMaxGroup
	}
	if c.ReserveBytes == 0 {
		c.ReserveBytes = defaultReserveBytes
	}
	return c
}

// Validate reports every problem with c, each naming the field and its value. Zero values
// that have a default are valid. It touches no file.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("missing Dir: the directory for the store's data is required"))
	}
	if c.LockTimeout < 0 {
		errs = append(errs, fmt.Errorf("negative LockTimeout %v", c.LockTimeout))
	}
	if c.SweepInterval < 0 {
		errs = append(errs, fmt.Errorf("negative SweepInterval %v", c.SweepInterval))
	}
	if c.MaxGroup < 0 {
		errs = append(errs, fmt.Errorf("negative MaxGroup %d", c.MaxGroup))
	}
	if c.ReserveBytes < 0 {
		errs = append(errs, fmt.Errorf("negative ReserveBytes %d", c.ReserveBytes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("embedded store config: %w", errors.Join(errs...))
	}
	return nil
}
