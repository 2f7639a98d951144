package embedded_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-mqtt/switchboard/store/embedded"
)

func TestConfigValidate(t *testing.T) {
	cfg := embedded.DefaultConfig()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Fatalf("DefaultConfig without Dir: %v, want an error naming Dir", err)
	}
	cfg.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig with Dir: %v", err)
	}
	if err := (embedded.Config{Dir: "x"}).Validate(); err != nil {
		t.Fatalf("zero values have defaults: %v", err)
	}
	bad := embedded.Config{Dir: "x", LockTimeout: -time.Second, SweepInterval: -time.Minute, MaxGroup: -2}
	err := bad.Validate()
	if err == nil {
		t.Fatal("negative values accepted")
	}
	for _, want := range []string{"LockTimeout -1s", "SweepInterval -1m0s", "MaxGroup -2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := embedded.Open(testContext(t), embedded.Config{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Fatalf("Open without Dir: %v, want an error naming Dir", err)
	}
}
