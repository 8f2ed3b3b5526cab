package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

// topLevelKeys counts each key of the JSON object line (a duplicate key
// counts twice, which json.Unmarshal would hide).
func topLevelKeys(t *testing.T, line []byte) map[string]int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s (%v)", line, err)
	}
	keys := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		keys[tok.(string)]++
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return keys
}

// TestAuditFileOneTime: every line of log.audit_file is valid JSON with
// exactly one "time" key, the event's own. Before, slog's record time and
// the event's time were both written under "time".
func TestAuditFileOneTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := config.Default()
	cfg.Log.AuditFile = path
	audit, closeFn, err := auditLogger(cfg, os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	eventTime := time.Date(2026, 12, 6, 15, 26, 21, 0, time.UTC).Format(time.RFC3339Nano)
	audit.Info("audit", "event", "reset.completed", "time", eventTime, "outcome", "success")
	audit.Info("audit", "event", "configuration.loaded", "time", eventTime, "outcome", "success")
	closeFn()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		keys := topLevelKeys(t, sc.Bytes())
		if keys["time"] != 1 || keys["event"] != 1 || keys["log"] != 1 {
			t.Fatalf("line %d: keys %v: %s", n, keys, sc.Bytes())
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["time"] != eventTime {
			t.Fatalf("line %d: time %v, want the event's %s (%v)", n, m["time"], eventTime, err)
		}
	}
	if n != 2 {
		t.Fatalf("%d lines:\n%s", n, b)
	}
}
