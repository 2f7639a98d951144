package bearer

import "testing"

func TestToken(t *testing.T) {
	for _, c := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer   ", "", false},
		{"Bearerabc", "", false},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", false},
		{"", "", false},
	} {
		if got, ok := Token(c.header); got != c.token || ok != c.ok {
			t.Errorf("Token(%q) = %q, %v; want %q, %v", c.header, got, ok, c.token, c.ok)
		}
	}
}
