package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkeyhq/latchkey/store"
)

// flowState is what a flow keeps besides the columns of store.Flow: the
// typed form of store.Flow.Data (encrypted at rest). Each field is read
// from and written to the key named in its comment, the keys every
// version so far has written, so that instances of an old and a new
// version share the flows in flight (no migration). A key this version
// does not know (written by a newer one) is kept as it is.
//
// A reset or unlock flow has Offered, DN, Acct and Bind from its start; a
// registration flow has Method.
type flowState struct {
	// Offered ("offered", JSON list of offeredJSON): the methods the flow
	// shows, real and fake, in the order they were drawn (flowView sorts).
	Offered []Offered
	// DN ("dn", written even when empty in a reset or unlock flow): the
	// directory entry of the flow's account; "" for a decoy flow.
	DN string
	// Acct ("acct"): the counter key of the account or, for a name that is
	// no account, of the name (accountKey): the budgets of sends and wrong
	// codes are spent under it, real and decoy alike.
	Acct string
	// Bind ("bind"): the secret the flow's codes are bound to, fixed for
	// the flow's life while its id changes (flowBinding). "" in flows from
	// before it existed.
	Bind string
	// Kinds ("kinds", JSON): the kinds of method the account's tiers
	// require (policy.Decision.RequireKinds); nil when none, always for a
	// decoy.
	Kinds [][]string
	// Types ("types", JSON, written with Kinds only): the method types the
	// account may use, to name what still counts (kindsMissing).
	Types []string
	// Questions ("questions", JSON object): the questions each offered
	// security questions method asks, by method id.
	Questions map[string][]Question
	// PartialFailures ("partial_fail", decimal): wrong proofs after a first
	// method was proven while more are needed (partialFailure).
	PartialFailures int
	// Writing ("writing", RFC 3339 with nanoseconds, UTC): when a
	// completion claimed the flow for its directory write; zero when
	// unclaimed (writing).
	Writing time.Time
	// PasswordSetBefore ("pw_set_before"): the directory's last-set time of
	// the password read by the claiming completion before its write
	// (formatPasswordSet; "" when the directory keeps none); nil when the
	// key is absent (passwordMoved tells the two apart).
	PasswordSetBefore *string
	// Recorded ("recorded", read only): not empty when a version that
	// marked flows recorded the flow's write (recordWrite).
	Recorded string
	// Challenges ("challenges", decimal): how many times the flow asked
	// for passkey assertion options (maxFlowChallenges).
	Challenges int
	// Ceremonies ("pk:" + method id, JSON): the live passkey assertion
	// ceremony of each passkey method of a reset or unlock flow.
	Ceremonies map[string]webauthn.SessionData
	// Method ("method"): in a registration flow, the method registered.
	Method string
	// Registration ("passkey", JSON): in a registration flow of a passkey,
	// its live creation ceremony; nil once taken.
	Registration *webauthn.SessionData
	// Label ("label"): in a registration flow of a passkey, the label the
	// user gave it.
	Label string
	// Name ("name"): in a reset or unlock flow, the username it was
	// started for (canonical, as typed), real or not: shown back to the
	// person who typed it ("Resetting the password of …, not you?"). ""
	// in flows from before it existed.
	Name string

	// other holds the keys this version does not know, as read
	other map[string]string
}

// Keys of flowState in store.Flow.Data.
const (
	keyOffered     = "offered"
	keyDN          = "dn"
	keyAcct        = "acct"
	keyBind        = "bind"
	keyKinds       = "kinds"
	keyTypes       = "types"
	keyQuestions   = "questions"
	keyPartialFail = "partial_fail"
	keyWriting     = "writing"
	keyPwSetBefore = "pw_set_before"
	keyRecorded    = "recorded"
	keyChallenges  = "challenges"
	keyCeremony    = "pk:" // + method id
	keyMethod      = "method"
	keyPasskey     = "passkey"
	keyLabel       = "label"
	keyName        = "name"
)

// decodeFlowState reads the state of a flow of kind from its stored data.
// A value that does not decode is an error naming its key: the flow is
// unreadable, never read as if the key were missing.
func decodeFlowState(data map[string]string) (flowState, error) {
	var st flowState
	jsonKey := func(key, raw string, v any) error {
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			return fmt.Errorf("flow state %q: %w", key, err)
		}
		return nil
	}
	for k, v := range data {
		var err error
		switch k {
		case keyOffered:
			var js []offeredJSON
			if err = jsonKey(k, v, &js); err == nil {
				st.Offered = make([]Offered, len(js))
				for i, m := range js {
					st.Offered[i] = Offered{ID: m.ID, Type: m.Type, Hint: m.Hint, real: m.Real}
				}
			}
		case keyDN:
			st.DN = v
		case keyAcct:
			st.Acct = v
		case keyBind:
			st.Bind = v
		case keyKinds:
			err = jsonKey(k, v, &st.Kinds)
		case keyTypes:
			err = jsonKey(k, v, &st.Types)
		case keyQuestions:
			err = jsonKey(k, v, &st.Questions)
		case keyPartialFail:
			st.PartialFailures, err = decimalKey(k, v)
		case keyChallenges:
			st.Challenges, err = decimalKey(k, v)
		case keyWriting:
			if st.Writing, err = time.Parse(time.RFC3339Nano, v); err != nil {
				err = fmt.Errorf("flow state %q: %w", k, err)
			}
		case keyPwSetBefore:
			st.PasswordSetBefore = &v
		case keyRecorded:
			st.Recorded = v
		case keyMethod:
			st.Method = v
		case keyPasskey:
			var sd webauthn.SessionData
			if err = jsonKey(k, v, &sd); err == nil {
				st.Registration = &sd
			}
		case keyLabel:
			st.Label = v
		case keyName:
			st.Name = v
		default:
			if id, ok := strings.CutPrefix(k, keyCeremony); ok {
				var sd webauthn.SessionData
				if err = jsonKey(k, v, &sd); err == nil {
					if st.Ceremonies == nil {
						st.Ceremonies = map[string]webauthn.SessionData{}
					}
					st.Ceremonies[id] = sd
				}
				break
			}
			if st.other == nil {
				st.other = map[string]string{}
			}
			st.other[k] = v
		}
		if err != nil {
			return flowState{}, err
		}
	}
	return st, nil
}

func decimalKey(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("flow state %q: %w", key, err)
	}
	return n, nil
}

// data is st as stored in a flow of kind: the keys the versions before
// the typed state wrote, each when they wrote it.
func (st flowState) data(kind string) (map[string]string, error) {
	out := maps.Clone(st.other)
	if out == nil {
		out = map[string]string{}
	}
	put := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("flow state %q: %w", key, err)
		}
		out[key] = string(b)
		return nil
	}
	if kind != store.FlowRegister {
		// a reset or unlock flow: written from its start, dn even empty
		out[keyDN] = st.DN
	} else if st.DN != "" {
		out[keyDN] = st.DN
	}
	if st.Offered != nil {
		if err := put(keyOffered, toJSON(st.Offered)); err != nil {
			return nil, err
		}
	}
	for k, v := range map[string]string{keyAcct: st.Acct, keyBind: st.Bind, keyRecorded: st.Recorded,
		keyMethod: st.Method, keyLabel: st.Label, keyName: st.Name} {
		if v != "" {
			out[k] = v
		}
	}
	if len(st.Kinds) > 0 {
		if err := put(keyKinds, st.Kinds); err != nil {
			return nil, err
		}
		if err := put(keyTypes, st.Types); err != nil {
			return nil, err
		}
	}
	if len(st.Questions) > 0 {
		if err := put(keyQuestions, st.Questions); err != nil {
			return nil, err
		}
	}
	if st.PartialFailures > 0 {
		out[keyPartialFail] = strconv.Itoa(st.PartialFailures)
	}
	if st.Challenges > 0 {
		out[keyChallenges] = strconv.Itoa(st.Challenges)
	}
	if !st.Writing.IsZero() {
		out[keyWriting] = st.Writing.UTC().Format(time.RFC3339Nano)
	}
	if st.PasswordSetBefore != nil {
		out[keyPwSetBefore] = *st.PasswordSetBefore
	}
	for id, sd := range st.Ceremonies {
		if err := put(keyCeremony+id, sd); err != nil {
			return nil, err
		}
	}
	if st.Registration != nil {
		if err := put(keyPasskey, st.Registration); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// liveFlow is a flow as read from the store: its row and its typed state.
// The row's Data is never read (readFlow empties it); st is, and row
// writes it back.
type liveFlow struct {
	store.Flow
	st flowState
	// Data hides store.Flow.Data: f.Data["key"] does not compile
	Data struct{}
}

// readFlow decodes the state of the stored flow f.
func readFlow(f store.Flow) (liveFlow, error) {
	st, err := decodeFlowState(f.Data)
	if err != nil {
		return liveFlow{}, err
	}
	f.Data = nil
	return liveFlow{Flow: f, st: st}, nil
}

// row is f as stored, its state in Data.
func (f liveFlow) row() (store.Flow, error) {
	r := f.Flow
	data, err := f.st.data(f.Kind)
	if err != nil {
		return store.Flow{}, err
	}
	r.Data = data
	return r, nil
}

// updateFlow stores f's row and state (store.Store.UpdateFlow).
func (s *Service) updateFlow(ctx context.Context, f liveFlow) error {
	r, err := f.row()
	if err != nil {
		return err
	}
	return s.d.Store.UpdateFlow(ctx, r)
}

// rotateFlow stores f's row and state under the new id next
// (store.Store.RotateFlow).
func (s *Service) rotateFlow(ctx context.Context, f liveFlow, next string) error {
	r, err := f.row()
	if err != nil {
		return err
	}
	return s.d.Store.RotateFlow(ctx, r, next)
}
