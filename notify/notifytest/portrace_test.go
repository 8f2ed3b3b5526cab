package notifytest

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMailpitPortTakenByAnotherServer: tests run in parallel, so a port
// freePort found free may be taken by another test's server before mailpit
// binds it. Here both of the first ports handed out are held by servers
// that answer as mailpit would be expected to (/readyz 200, an SMTP
// greeting): StartMailpit must not take their answers for mailpit's, and
// must end up with a mailpit of its own. Before the fix it returned the
// other server's SMTP port while mailpit had exited with "address already
// in use" (CI run F-3: "no code mailed").
func TestMailpitPortTakenByAnotherServer(t *testing.T) {
	if _, err := MailpitPath(); err != nil {
		SkipOrFail(t, "mailpit not found: %v", err)
	}
	httpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(httpL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	go func() {
		for {
			c, err := smtpL.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 another server ESMTP\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { httpL.Close(); smtpL.Close() })
	taken := []int{httpL.Addr().(*net.TCPAddr).Port, smtpL.Addr().(*net.TCPAddr).Port}
	handed := 0
	pickPort = func(t testing.TB) int {
		if handed < len(taken) {
			handed++
			return taken[handed-1]
		}
		return freePort(t)
	}
	t.Cleanup(func() { pickPort = freePort })

	m := StartMailpit(t)
	if m.SMTPPort == taken[1] || strings.HasSuffix(m.APIURL, ":"+itoa(taken[0])) {
		t.Fatalf("StartMailpit took another server's ports: SMTP %d, API %s", m.SMTPPort, m.APIURL)
	}
	c, err := net.DialTimeout("tcp", m.SMTPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(greeting, "another server") || !strings.HasPrefix(greeting, "220") {
		t.Fatalf("SMTP greeting %q is not mailpit's", greeting)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
