// Command bench-go runs one path of `memphis-fast bench` with the official Go client
// (memphis.go) or with nats.go's JetStream API, as a peer of the Python runners.
//
// It speaks the runners' protocol (python/memphis_fast/bench/runner_common.py): the same
// command-line flags, one JSON object written to --json-out, exit status 0 even when the run
// failed (ok: false and an error). A non-zero exit means the program itself failed (bad flags).
// The one flag of its own is --client (memphis-go or nats-go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

// Args mirrors runner_common.build_parser.
type Args struct {
	Client      string
	Path        string
	Variant     string
	JSONOut     string
	Host        string
	ConnectHost string
	Port        int
	User        string
	Password    string
	Token       string
	AccountID   int
	Station     string
	Partitions  int
	Payload     int
	Messages    int
	Batch       int
	NatsPid     int
	Connects    int
	StopSeconds float64
}

type handler func(a *Args) Result

var clients = map[string]map[string]handler{
	"memphis-go": memphisGoHandlers,
	"nats-go":    natsGoHandlers,
}

func parseArgs(argv []string) (*Args, error) {
	a := &Args{}
	fs := flag.NewFlagSet("bench-go", flag.ContinueOnError)
	fs.StringVar(&a.Client, "client", "", "memphis-go or nats-go")
	fs.StringVar(&a.Path, "path", "", "the benchmark path")
	fs.StringVar(&a.Variant, "variant", "", "the path's variant")
	fs.StringVar(&a.JSONOut, "json-out", "", "write the result here (- for stdout)")
	fs.StringVar(&a.Host, "host", "127.0.0.1", "broker host")
	fs.StringVar(&a.ConnectHost, "connect-host", "localhost", "host for the connect path")
	fs.IntVar(&a.Port, "port", 0, "broker port")
	fs.StringVar(&a.User, "user", "root", "Memphis user")
	fs.StringVar(&a.Password, "password", "", "password (password mode)")
	fs.StringVar(&a.Token, "token", "", "connection token (token mode)")
	fs.IntVar(&a.AccountID, "account-id", 1, "account id")
	fs.StringVar(&a.Station, "station", "", "station name")
	fs.IntVar(&a.Partitions, "partitions", 1, "partitions of the station")
	fs.IntVar(&a.Payload, "payload", 128, "payload bytes")
	fs.IntVar(&a.Messages, "messages", 10000, "messages in the timed section")
	fs.IntVar(&a.Batch, "batch", 1000, "fetch / consume batch size")
	fs.IntVar(&a.NatsPid, "nats-pid", 0, "nats-server pid (its CPU is measured)")
	fs.IntVar(&a.Connects, "connects", 20, "connections of the connect path")
	fs.Float64Var(&a.StopSeconds, "stop-seconds", 2.0, "memory-bound (not implemented here)")
	if err := fs.Parse(argv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if _, ok := clients[a.Client]; !ok {
		return nil, fmt.Errorf("--client must be memphis-go or nats-go, not %q", a.Client)
	}
	if a.Path == "" || a.JSONOut == "" || a.Port == 0 {
		return nil, fmt.Errorf("--path, --json-out and --port are required")
	}
	if a.Partitions < 1 || a.Messages < 1 || a.Batch < 1 || a.Payload < 0 {
		return nil, fmt.Errorf("--partitions, --messages and --batch must be positive")
	}
	return a, nil
}

// runPath runs the handler; a panic becomes a failed result, as an exception does in the
// Python runners.
func runPath(a *Args, h handler) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			res = failure(a, fmt.Sprintf("panic: %v", r))
			res["traceback"] = string(debug.Stack())
		}
	}()
	return h(a)
}

func main() {
	a, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-go: %v\n", err)
		os.Exit(2)
	}
	var res Result
	if h, ok := clients[a.Client][a.Path]; ok {
		res = runPath(a, h)
	} else {
		res = failure(a, fmt.Sprintf("path %q is not implemented by %s", a.Path, a.Client))
		res["unsupported"] = true
	}
	data, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-go: %v\n", err)
		os.Exit(1)
	}
	if a.JSONOut == "-" {
		_, err = os.Stdout.Write(append(data, '\n'))
	} else {
		err = os.WriteFile(a.JSONOut, data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-go: %v\n", err)
		os.Exit(1)
	}
	// Exit at once: the clients' background goroutines (consume loops, pings) need no
	// orderly shutdown once the result is written.
	os.Exit(0)
}
