package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The names runner_common uses: the producer, the consumer group (its durable is bench-cg)
// and the consumer of the consume paths.
const (
	producerName  = "bench-producer"
	consumerGroup = "bench-cg"
	consumerName  = "bench-consumer"
	warmup        = 100 // sync produces before the timed section of the produce paths
)

// Result is one run's JSON object, with the keys of runner_common.result.
type Result map[string]any

// makePayload is runner_common.make_payload(size, seed=0): printable, not trivially
// compressible bytes.
func makePayload(size int) []byte {
	base := make([]byte, 251)
	for i := range base {
		base[i] = byte(33 + (i*7)%90)
	}
	out := make([]byte, 0, size)
	for len(out) < size {
		out = append(out, base[:min(len(base), size-len(out))]...)
	}
	return out
}

// internalName is a station name as the broker stores it (orders.eu -> orders#eu).
func internalName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), ".", "#")
}

// streamNames are the station's JetStream streams: <internal>$1 ... <internal>$N.
func streamNames(station string, partitions int) []string {
	base := internalName(station)
	out := make([]string, partitions)
	for p := 1; p <= partitions; p++ {
		out[p-1] = fmt.Sprintf("%s$%d", base, p)
	}
	return out
}

// uuid4 is a random (version 4) UUID, as memphis-py's connection ids are.
func uuid4() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// natsCPUSeconds is runner_common.nats_cpu_seconds: the CPU time of a process so far (all its
// threads, from /proc/<pid>/task/*/schedstat; /proc/<pid>/stat as the fallback).
func natsCPUSeconds(pid int) (float64, bool) {
	if pid <= 0 {
		return 0, false
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err == nil && len(tasks) > 0 {
		var total int64
		ok := true
		for _, t := range tasks {
			raw, err := os.ReadFile(t)
			if err != nil {
				ok = false
				break
			}
			f := bytes.Fields(raw)
			if len(f) == 0 {
				ok = false
				break
			}
			v, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				ok = false
				break
			}
			total += v
		}
		if ok {
			return float64(total) / 1e9, true
		}
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 || i+2 > len(raw) {
		return 0, false
	}
	f := bytes.Fields(raw[i+2:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(ut+st) / 100, true // USER_HZ is 100 on Linux
}

// peakRSSBytes is VmHWM (as runner_common.peak_rss_bytes), with getrusage as the fallback.
func peakRSSBytes() int64 {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "VmHWM:") {
				fields := strings.Fields(line)
				if len(fields) >= 2 {
					if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
						return kb * 1024
					}
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		return ru.Maxrss * 1024
	}
	return 0
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// Meter measures wall time, this process's CPU (getrusage: all threads, user and system) and
// nats-server's CPU around the timed section, as runner_common.Meter does.
type Meter struct {
	natsPid    int
	t0         time.Time
	ru0        syscall.Rusage
	s0         float64
	s0ok       bool
	Wall       float64
	User       float64
	Sys        float64
	ServerCPU  float64
	ServerCPUk bool
}

func newMeter(natsPid int) *Meter { return &Meter{natsPid: natsPid} }

func (m *Meter) Start() {
	m.s0, m.s0ok = natsCPUSeconds(m.natsPid)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &m.ru0)
	m.t0 = time.Now()
}

func (m *Meter) Stop() {
	m.Wall = time.Since(m.t0).Seconds()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	m.User = tvSeconds(ru.Utime) - tvSeconds(m.ru0.Utime)
	m.Sys = tvSeconds(ru.Stime) - tvSeconds(m.ru0.Stime)
	s1, ok := natsCPUSeconds(m.natsPid)
	m.ServerCPUk = ok && m.s0ok
	m.ServerCPU = s1 - m.s0
}

// percentile is runner_common.percentile: nearest rank, with Python's round (half to even).
func percentile(sorted []int64, q float64) int64 {
	k := int(math.RoundToEven(q * float64(len(sorted)-1)))
	k = max(0, min(len(sorted)-1, k))
	return sorted[k]
}

// outcome is what a path reports besides the meter and the latencies.
type outcome struct {
	messages  int
	meter     *Meter
	latencies []int64 // nanoseconds
	ok        bool
	err       string
	acked     *int
	failed    int
	extra     map[string]any
}

func intp(v int) *int { return &v }

// result builds the JSON object of runner_common.result.
func result(a *Args, o outcome) Result {
	out := Result{
		"client":                a.Client,
		"path":                  a.Path,
		"variant":               a.Variant,
		"payload":               a.Payload,
		"partitions":            a.Partitions,
		"ok":                    o.ok,
		"error":                 nil,
		"messages":              o.messages,
		"acked":                 nil,
		"failed":                o.failed,
		"seconds":               nil,
		"msgs_per_s":            nil,
		"mb_per_s":              nil,
		"lat_p50_us":            nil,
		"lat_p99_us":            nil,
		"client_cpu_us_per_msg": nil,
		"server_cpu_us_per_msg": nil,
		"peak_rss_mb":           float64(peakRSSBytes()) / 1e6,
		"extra":                 map[string]any{},
	}
	if o.err != "" {
		out["error"] = o.err
	}
	if o.acked != nil {
		out["acked"] = *o.acked
	}
	if o.extra != nil {
		out["extra"] = o.extra
	}
	m := o.meter
	if m != nil && o.messages > 0 && m.Wall > 0 {
		n := float64(o.messages)
		out["seconds"] = m.Wall
		out["msgs_per_s"] = n / m.Wall
		out["mb_per_s"] = n * float64(a.Payload) / m.Wall / 1e6
		out["client_cpu_us_per_msg"] = (m.User + m.Sys) / n * 1e6
		if m.User+m.Sys > 0 {
			out["client_sys_share"] = m.Sys / (m.User + m.Sys)
		}
		if m.ServerCPUk {
			out["server_cpu_us_per_msg"] = m.ServerCPU / n * 1e6
		}
	}
	if len(o.latencies) > 0 {
		lat := append([]int64(nil), o.latencies...)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		out["lat_p50_us"] = float64(percentile(lat, 0.5)) / 1000
		out["lat_p99_us"] = float64(percentile(lat, 0.99)) / 1000
	}
	return out
}

func failure(a *Args, msg string) Result {
	return result(a, outcome{ok: false, err: msg})
}

// errResult is a failed run after part of it was measured (the setup or the run stopped).
func errResult(a *Args, format string, v ...any) Result {
	return failure(a, fmt.Sprintf(format, v...))
}
