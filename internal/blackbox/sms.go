package blackbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// CodeSMS is in the body of every SMS that carries a code.
const CodeSMS = "is your"

// SMS reads what the Twilio contract server accepted; its waits wake
// when a message arrives.
type SMS struct {
	Twilio *notifytest.FakeTwilio
	// Seen, when not nil, counts the codes Code returned per number, so
	// that it returns only a code sent after them; nil: Code returns the
	// newest code.
	Seen map[string]int
}

// To lists the messages to number whose body contains sub, oldest first.
func (s SMS) To(number, sub string) []notifytest.TwilioMessage {
	return smsTo(s.Twilio.Messages(), number, sub)
}

func smsTo(msgs []notifytest.TwilioMessage, number, sub string) []notifytest.TwilioMessage {
	var out []notifytest.TwilioMessage
	for _, m := range msgs {
		if m.To == number && strings.Contains(m.Body, sub) {
			out = append(out, m)
		}
	}
	return out
}

// Code waits for a code sent to number (E.164; see Seen) and returns it.
func (s SMS) Code(ctx context.Context, number string) (string, error) {
	var code string
	_, err := s.Twilio.Wait(ctx, func(msgs []notifytest.TwilioMessage) bool {
		l := smsTo(msgs, number, CodeSMS)
		if len(l) == 0 || s.Seen != nil && len(l) <= s.Seen[number] {
			return false
		}
		c := CodeRE.FindStringSubmatch(l[len(l)-1].Body)
		if c == nil {
			return false
		}
		if s.Seen != nil {
			s.Seen[number] = len(l)
		}
		code = c[1]
		return true
	})
	if err != nil {
		return "", fmt.Errorf("no code sent by SMS to %s: %w", number, err)
	}
	return code, nil
}
