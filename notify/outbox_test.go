package notify

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestOutboxValidatesLikeTheRealSendersAndKeepsTheNewest(t *testing.T) {
	o := NewOutbox(3)
	ctx := context.Background()
	if err := o.SendEmail(ctx, Email{To: "a@example.org\r\nBcc: x@example.org", Subject: "s", Text: "t"}); !errors.Is(err, ErrInvalidAddress) && !errors.Is(err, ErrHeaderInjection) {
		t.Fatalf("header injection accepted: %v", err)
	}
	if err := o.SendSMS(ctx, SMS{To: "07700900123", Body: "x"}); !errors.Is(err, ErrInvalidSMS) {
		t.Fatalf("a number not in E.164 accepted: %v", err)
	}
	if n := len(o.Messages()); n != 0 {
		t.Fatalf("%d refused messages kept", n)
	}
	for i := 1; i <= 4; i++ {
		if err := o.SendEmail(ctx, Email{To: "a@example.org", Subject: fmt.Sprint("mail ", i), Text: "code"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.SendSMS(ctx, SMS{To: "+447700900123", Body: "123456 is your code"}); err != nil {
		t.Fatal(err)
	}
	got := o.Messages()
	if len(got) != 3 {
		t.Fatalf("%d messages kept, want the last 3", len(got))
	}
	if got[0].Kind != "sms" || got[0].ID != 5 || got[0].Text != "123456 is your code" || got[0].To != "+447700900123" {
		t.Fatalf("newest = %+v", got[0])
	}
	if got[1].Subject != "mail 4" || got[2].Subject != "mail 3" || got[2].ID != 3 {
		t.Fatalf("order: %+v", got)
	}
}
