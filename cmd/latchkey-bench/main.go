// Command latchkey-bench measures the latchkey gateway against a throwaway
// slapd seeded with many users, with the raw go-ldap sequences (the
// directory's ceiling) in the same run. See docs/performance.md.
//
//	go run ./cmd/latchkey-bench                 # the full run (minutes)
//	go run ./cmd/latchkey-bench --smoke         # seconds; correctness only
//	go run ./cmd/latchkey-bench --store postgres --instances 3
//	go run ./cmd/latchkey-bench --json out.json --cpuprofile /tmp/lk
//
// It is a separate command, not a subcommand of latchkey, because it reuses
// the test servers of directory/dirtest and notify/notifytest: the binary
// shipped to users does not carry them. Exit code 1 on a correctness
// failure (a password not changed, a message missing), never on timings;
// 2 on bad flags.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/bench"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	o, jsonPath, ok := parseFlags(args, stderr)
	if !ok {
		return 2
	}
	o.Log = stderr
	t, err := bench.NewCommandTB(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey-bench:", err)
		return 1
	}
	defer t.Close()
	start := time.Now()
	var rep *bench.Report
	err = bench.Guard(func() error {
		var rerr error
		rep, rerr = bench.Run(t, o)
		return rerr
	})
	if rep != nil {
		rep.WriteTable(stdout)
		if jsonPath != "" {
			if jerr := rep.WriteJSON(jsonPath); jerr != nil {
				fmt.Fprintln(stderr, "latchkey-bench:", jerr)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "latchkey-bench: %s on %d cores\n", time.Since(start).Round(time.Second), runtime.NumCPU())
	if err != nil {
		fmt.Fprintln(stderr, "latchkey-bench:", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line into the bench's options and the JSON
// report's path; ok is false (the reason written to stderr) on a bad one.
func parseFlags(args []string, stderr io.Writer) (o bench.Options, jsonPath string, ok bool) {
	fs := flag.NewFlagSet("latchkey-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conc, only string
	fs.BoolVar(&o.Smoke, "smoke", false, "seconds-long run with few users: correctness only")
	fs.IntVar(&o.Users, "users", 0, "bench users in the directory (default 10000; smoke 200)")
	fs.DurationVar(&o.Duration, "duration", 0, "time bound per scenario and concurrency (default 5s)")
	fs.IntVar(&o.MaxOps, "max-ops", 0, "count bound per scenario and concurrency (default 20000)")
	fs.StringVar(&conc, "c", "", "concurrencies, comma-separated (default 1,8,32)")
	fs.IntVar(&o.Reps, "reps", 0, "repetitions of the whole sequence (default 1)")
	fs.IntVar(&o.EnumSamples, "enum-samples", 0, "reset starts per kind for the enumeration check (default 400; -1: none)")
	fs.IntVar(&o.Outstanding, "outstanding", 0, "flows and codes in the scaling case's store (default 100000; -1: no scaling case)")
	fs.DurationVar(&o.PadFloor, "pad-floor", 0, "policy.pad_floor of the bench gateway (default: the gateway's, 0)")
	fs.IntVar(&o.PoolSize, "pool-size", 0, "directory.pool_size of the bench gateway (default: the gateway's, 4)")
	fs.IntVar(&o.OutboxMaxPending, "outbox-max-pending", 0, "outbox.max_pending of the bench gateways (default: the gateway's, 10000): a small one makes code sends answer busy under load")
	fs.StringVar(&o.Store, "store", "sqlite", "store.driver of the bench gateways: sqlite (a file each) or postgres (a throwaway PostgreSQL server, as the tests start it)")
	fs.IntVar(&o.Instances, "instances", 1, "gateways sharing one store, each request sent to the next in turn (more than 1 needs --store postgres)")
	fs.StringVar(&o.Binary, "latchkey", "", "latchkey binary (default: go build one)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write gateway CPU profiles at c=8 to PREFIX-<scenario>-c8.pprof and execution traces at c=1 to PREFIX-<scenario>-c1.trace (builds with -tags latchkey_pprof)")
	fs.StringVar(&only, "only", "", "scenarios to run, comma-separated: "+strings.Join(bench.Scenarios, ",")+" (default all)")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return o, "", false
	}
	if conc != "" {
		for _, s := range strings.Split(conc, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				fmt.Fprintf(stderr, "latchkey-bench: -c: %q is not a concurrency\n", s)
				return o, "", false
			}
			o.Concurrency = append(o.Concurrency, n)
		}
	}
	if only != "" {
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(bench.Scenarios, s) {
				fmt.Fprintf(stderr, "latchkey-bench: --only: %q is not one of %s\n", s, strings.Join(bench.Scenarios, ", "))
				return o, "", false
			}
			o.Only = append(o.Only, s)
		}
	}
	if o.Store != "sqlite" && o.Store != "postgres" {
		fmt.Fprintf(stderr, "latchkey-bench: --store: %q is not sqlite or postgres\n", o.Store)
		return o, "", false
	}
	if o.Instances < 1 || (o.Instances > 1 && o.Store != "postgres") {
		fmt.Fprintln(stderr, "latchkey-bench: --instances: at least 1, and more than 1 needs --store postgres (a SQLite store serves one process)")
		return o, "", false
	}
	return o, jsonPath, true
}
