package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// heldNoticeAAD binds the sealed data of a held notice to its account.
func heldNoticeAAD(accountID string) []byte { return aad("held-notice", accountID) }

func checkHeldNotice(n HeldNotice) error {
	if n.AccountID == "" || len(n.Events) == 0 || slices.Contains(n.Events, "") {
		return fmt.Errorf("%w: a held notice needs an account and events", ErrInvalid)
	}
	return nil
}

// mergeHeld merges n into old as HoldNotice describes.
func mergeHeld(old, n HeldNotice) HeldNotice {
	for _, e := range n.Events {
		if !slices.Contains(old.Events, e) {
			old.Events = append(old.Events, e)
		}
	}
	if len(n.Data) > 0 {
		old.Data = n.Data
	}
	old.SMSOnly = old.SMSOnly && n.SMSOnly
	if n.HeldAt.Before(old.HeldAt) {
		old.HeldAt = n.HeldAt
	}
	if n.DueAt.Before(old.DueAt) {
		old.DueAt = n.DueAt
	}
	return old
}

// sealHeldData is the stored form of n.Data: nil when empty.
func (k *keys) sealHeldData(n HeldNotice) ([]byte, error) {
	if len(n.Data) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(n.Data)
	if err != nil {
		return nil, fmt.Errorf("store: hold notice: %w", err)
	}
	return k.seal(b, heldNoticeAAD(n.AccountID)), nil
}

func (k *keys) openHeldData(n *HeldNotice, enc []byte) error {
	if enc == nil {
		return nil
	}
	pt, err := k.open(enc, heldNoticeAAD(n.AccountID))
	if err != nil {
		return err
	}
	return json.Unmarshal(pt, &n.Data)
}

func checkLimit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("%w: limit must be at least 1", ErrInvalid)
	}
	return nil
}

// sortHeld orders notices by DueAt, then account (RETURNING keeps no order).
func sortHeld(ns []HeldNotice) {
	slices.SortFunc(ns, func(a, b HeldNotice) int {
		if c := a.DueAt.Compare(b.DueAt); c != 0 {
			return c
		}
		return strings.Compare(a.AccountID, b.AccountID)
	})
}
