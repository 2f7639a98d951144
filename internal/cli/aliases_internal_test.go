package cli

import "testing"

// TestCoordFlagAliases: --coord-root and --coord-dial-timeout are also given as their old
// names, --zk-root and --zk-dial-timeout, on the command line, in the environment and in
// the file; the new name wins at the same level, and a higher level wins whichever name it
// uses.
func TestCoordFlagAliases(t *testing.T) {
	base := []string{"--zk", "127.0.0.1:1", "--redis", "127.0.0.1:2", "--no-auth"}
	for _, tc := range []struct {
		name      string
		file      string
		env       map[string]string
		args      []string
		root, dia string
	}{
		{name: "defaults", root: "/switchboard", dia: "10s"},
		{name: "old flags", args: []string{"--zk-root", "/old", "--zk-dial-timeout", "3s"}, root: "/old", dia: "3s"},
		{name: "new flags", args: []string{"--coord-root", "/new", "--coord-dial-timeout", "4s"}, root: "/new", dia: "4s"},
		{name: "old keys", file: "coordination:\n  zk-root: /old-file\n  zk-dial-timeout: 5s\n", root: "/old-file", dia: "5s"},
		{name: "new key over old key", file: "coordination:\n  zk-root: /old-file\n  coord-root: /new-file\n", root: "/new-file", dia: "10s"},
		{name: "old flag over new key", file: "coordination:\n  coord-root: /new-file\n", args: []string{"--zk-root", "/old"}, root: "/old", dia: "10s"},
		{name: "old variable", env: map[string]string{"SWITCHBOARD_ZK_ROOT": "/old-env"}, root: "/old-env", dia: "10s"},
		{name: "new variable over old", env: map[string]string{"SWITCHBOARD_ZK_ROOT": "/old-env", "SWITCHBOARD_COORD_ROOT": "/new-env"}, root: "/new-env", dia: "10s"},
		{name: "old variable over new key", file: "coordination:\n  coord-root: /new-file\n", env: map[string]string{"SWITCHBOARD_ZK_ROOT": "/old-env"}, root: "/old-env", dia: "10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append(append([]string(nil), base...), tc.args...)
			if tc.file != "" {
				args = append(args, "--config", writeConfig(t, tc.file))
			}
			fs, _, err := probeRole(t, "router", args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := flagValue(t, fs, "coord-root"); got != tc.root {
				t.Errorf("coord-root = %q, want %q", got, tc.root)
			}
			if got := flagValue(t, fs, "coord-dial-timeout"); got != tc.dia {
				t.Errorf("coord-dial-timeout = %q, want %q", got, tc.dia)
			}
		})
	}
}
