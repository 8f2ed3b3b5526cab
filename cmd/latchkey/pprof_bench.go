//go:build latchkey_pprof

package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"
)

// Only in a binary built with -tags latchkey_pprof (latchkey-bench
// --cpuprofile builds one): net/http/pprof on LATCHKEY_PPROF_LISTEN, a
// loopback address, never on the gateway's own listener. Release builds do
// not contain this file.
func init() {
	addr := os.Getenv("LATCHKEY_PPROF_LISTEN")
	if addr == "" || !strings.HasPrefix(addr, "127.0.0.1:") {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		_ = srv.Serve(ln)
	}()
}
