package config_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/config"
)

// Every key of the settings document is a key of Flat (what the audit's
// before and after and a conflict's changed keys are made of), and every
// field of the document's JSON is one of them.
func TestSettingsKeysCoverTheDocument(t *testing.T) {
	set := config.Default().Settings()
	flat := set.Flat()
	keys := config.SettingsKeys()
	if len(flat) != len(keys) {
		t.Fatalf("Flat has %d keys, SettingsKeys %d", len(flat), len(keys))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for section, fields := range doc {
		for f, v := range fields {
			k := section + "." + f
			if !slices.Contains(keys, k) {
				t.Errorf("%s is in the settings' JSON but not a settings key", k)
			} else if strings.ReplaceAll(flat[k], " ", "") != strings.ReplaceAll(string(v), " ", "") {
				t.Errorf("Flat()[%s] = %s, the document says %s", k, flat[k], v)
			}
		}
	}
}
