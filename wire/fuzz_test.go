package wire

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the FuzzDecode seed corpus in testdata")

// seedBodies are the fuzz seeds: every sample frame's body, and each cut short.
func seedBodies() map[string][]byte {
	seeds := make(map[string][]byte)
	for name, f := range sampleFrames() {
		b := AppendFrame(nil, f)[4:]
		seeds[name] = b
		seeds[name+"-cut"] = b[:len(b)/2]
		seeds[name+"-trailing"] = append(append([]byte(nil), b...), 0)
	}
	seeds["empty"] = []byte{}
	seeds["unknown-type"] = []byte{0xee, 1, 2}
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := DecodeFrame(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := AppendFrame(nil, fr)[4:]; !bytes.Equal(again, body) {
			t.Fatalf("%#v re-encodes to %x, decoded from %x", fr, again, body)
		}
		if seq, ok := requestSeq(body); ok {
			if want := reflectSeq(fr); seq != want {
				t.Fatalf("requestSeq %d, frame Seq %d", seq, want)
			}
		}
	})
}

func reflectSeq(f Frame) uint64 {
	switch f := f.(type) {
	case Deliver:
		return f.Seq
	case Kick:
		return f.Seq
	case Drain:
		return f.Seq
	}
	return 0
}

// TestSeedCorpus checks that the checked-in corpus holds every seed; with -update-corpus it
// rewrites the seeds (files it does not know, such as found crashers, are kept).
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	seeds := seedBodies()
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seeds[name])
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed corpus file %s is missing or stale (run go test -run TestSeedCorpus -update-corpus ./wire/)", path)
		}
	}
}
