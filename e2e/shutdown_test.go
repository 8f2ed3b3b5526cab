package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// On SIGTERM with server.shutdown_delay, /readyz answers 503 "draining"
// at once while every other request is still served, then the process
// stops cleanly: a load balancer moves away before the listener closes.
func TestShutdownDrainsReadinessFirst(t *testing.T) {
	srv := dirtest.StartOpenLDAP(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Server: "  shutdown_delay: 5s\n"})
	get := func(path string) (int, map[string]string) {
		res, err := httpClient.Get(e.base + path)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		return res.StatusCode, m
	}
	if code, body := get("/readyz"); code != 200 || body["shutdown"] != "" {
		t.Fatalf("before SIGTERM: readyz %d %v", code, body)
	}
	stopped := make(chan int, 1)
	sent := time.Now()
	go func() { stopped <- e.stop() }()

	// draining: not ready, still serving
	var drained bool
	for time.Since(sent) < 2*time.Second && !drained {
		code, body := get("/readyz")
		drained = code == 503 && body["shutdown"] == "draining"
		if !drained {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !drained {
		t.Fatal("/readyz did not answer 503 draining after SIGTERM")
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz while draining: %d", code)
	}
	r := e.api("POST", "/api/v1/reset", "", map[string]string{"username": "carol"})
	if r.Status != http.StatusOK {
		t.Fatalf("a reset start while draining: %d %s", r.Status, r.Body)
	}
	if rc := <-stopped; rc != 0 {
		t.Fatalf("exit code %d after draining", rc)
	}
	if code, _ := get("/healthz"); code != 0 {
		t.Fatalf("still answering after the stop: %d", code)
	}
}
