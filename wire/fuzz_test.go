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
	seeds["deliver-count-hostile"] = []byte{typeDeliver, 1, 0, 1, 'c', 1, 's', 0, 0x90, 0x4e, 0, 0, 0, 0, 0}
	seeds["drain-count-hostile"] = []byte{typeDrain, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}
	seeds["deliver-maxwait-overflow"] = []byte{typeDeliver, 1, 0, 1, 'c', 1, 's', 0x80, 0x80, 0x80, 0x80, 0x10, 0}
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
		// What the server answers when a request fails validation must agree with what
		// it would answer, from the bytes alone, when it fails to decode.
		if seq, n, ok := requestAnswers(body); ok {
			wantSeq, wantN := answersOwed(fr)
			if seq != wantSeq || n != wantN {
				t.Fatalf("requestAnswers: %d from seq %d; the frame is owed %d from seq %d", n, seq, wantN, wantSeq)
			}
		} else if _, owed := answersOwed(fr); owed > 0 {
			t.Fatalf("requestAnswers refused a %T that decodes", fr)
		}
	})
}

// answersOwed returns a request's Seq and the number of Results it is owed, 0 for a frame
// that is not a request.
func answersOwed(f Frame) (uint64, int) {
	switch f := f.(type) {
	case Deliver:
		return f.Seq, max(len(f.Msgs), 1)
	case Forward:
		return f.Seq, max(len(f.Items), 1)
	case Kick:
		return f.Seq, 1
	case Drain:
		return f.Seq, 1
	}
	return 0, 0
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
			t.Errorf("seed corpus file %s is missing or stale (run go test ./wire/ -run TestSeedCorpus -update-corpus)", path)
		}
	}
}
