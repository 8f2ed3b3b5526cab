package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// On SIGTERM with server.shutdown_delay, /readyz answers 503 "draining"
// at once while every other request is still served, then the process
// stops cleanly: a load balancer moves away before the listener closes.
func TestShutdownDrainsReadinessFirst(t *testing.T) {
	parallel(t)
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

// A request in flight when SIGTERM arrives finishes: a password write held
// by the directory path until the listener has closed (shutdown_delay
// over, the server shutting down) still completes, its answer reaches the
// client, and the process then exits 0.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	proxy := startLDAPProxy(t, strings.TrimPrefix(srv.URL, "ldap://"))
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Server: "  shutdown_delay: 1s\n",
		DirURLs: []string{proxy.URL()}, DirPlaintext: true, DirTimeout: 30 * time.Second})
	f := e.verifiedFlow("carol", "carol.home@example.net")

	proxy.mu.Lock()
	proxy.deliverLate = true
	proxy.mu.Unlock()
	proxy.freeze(true)
	answer := make(chan string, 1)
	go func() {
		body := strings.NewReader(`{"flow":"` + f.ID + `","password":"In-Flight-At-Stop-42"}`)
		res, err := httpClient.Post(e.target()+"/api/v1/reset/complete", "application/json", body)
		if err != nil {
			answer <- err.Error()
			return
		}
		defer res.Body.Close()
		answer <- res.Status
	}()
	for deadline := time.Now().Add(20 * time.Second); proxy.heldWrites() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the write never reached the directory path")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := make(chan int, 1)
	go func() { stopped <- e.stop() }()
	// wait until the listener is closed: no new connection is accepted
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.base, "http://"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case rc := <-stopped:
		t.Fatalf("exited (%d) with a request in flight", rc)
	default:
	}
	proxy.freeze(false)
	if a := <-answer; a != "200 OK" {
		t.Fatalf("the request in flight got %s", a)
	}
	if rc := <-stopped; rc != 0 {
		t.Fatalf("exit code %d", rc)
	}
	if err := srv.UserBind("carol", "In-Flight-At-Stop-42"); err != nil {
		t.Fatal(err)
	}
}
