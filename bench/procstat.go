package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// adminURL turns "host:port" or a URL into a base URL without a trailing slash.
func adminURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}

// metricsClient fetches metrics; short timeouts, since a slow answer spoils the figures.
var metricsClient = &http.Client{Timeout: 10 * time.Second}

// scrapeMetrics fetches a Prometheus text exposition and returns its samples by name
// (with labels, as written, when there are any).
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format's samples.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		// name{labels} value [timestamp]; label values may hold spaces, so split after '}'.
		nameEnd := strings.LastIndexByte(line, '}')
		if nameEnd < 0 {
			nameEnd = strings.IndexByte(line, ' ')
			if nameEnd < 0 {
				continue
			}
		} else {
			nameEnd++
		}
		fields := strings.Fields(line[nameEnd:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[line[:nameEnd]] = v
	}
	return out, sc.Err()
}

// forceGC asks a Go server with /debug/pprof to collect garbage (the heap profile with
// gc=1 runs a collection first), so heap figures compare live memory.
func forceGC(ctx context.Context, admin string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL(admin)+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("%s/debug/pprof/heap: %s (a node serves /debug/pprof only with its Pprof config on)", adminURL(admin), resp.Status)
	}
	return fmt.Errorf("%s/debug/pprof/heap: %s", adminURL(admin), resp.Status)
}

// vmRSS reads a process's resident set size from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/status VmRSS: %w", pid, err)
				}
				return kb << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// cpuSeconds sums process_cpu_seconds_total over the servers whose /metrics are at urls.
func cpuSeconds(ctx context.Context, urls []string) (float64, error) {
	var total float64
	for _, u := range urls {
		m, err := scrapeMetrics(ctx, u)
		if err != nil {
			return 0, err
		}
		v, ok := m["process_cpu_seconds_total"]
		if !ok {
			return 0, fmt.Errorf("%s has no process_cpu_seconds_total", u)
		}
		total += v
	}
	return total, nil
}

// pidCPUSeconds reads a process's CPU time (user + system) from /proc/<pid>/stat, in
// seconds (the kernel counts clock ticks, 100 a second on Linux).
func pidCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count from after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// After the name: state (field 3 of stat(5)) is f[0], utime (14) f[11], stime (15) f[12].
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return (ut + st) / 100, nil
}
