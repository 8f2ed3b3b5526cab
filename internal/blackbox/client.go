package blackbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Client calls one gateway, or several in turn (Bases: each request goes
// to the next, as a load balancer without sticky sessions would send it).
type Client struct {
	// Bases are the gateways' base URLs ("http://127.0.0.1:port").
	Bases []string
	// HTTP sends the requests (DefaultHTTP when nil).
	HTTP *http.Client
	n    atomic.Uint64
}

// DefaultHTTP is the http.Client of a Client without one.
var DefaultHTTP = &http.Client{Timeout: 30 * time.Second}

// NewClient is a client of the gateways at bases, with a transport that
// keeps enough idle connections for many clients in parallel.
func NewClient(bases ...string) *Client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return &Client{Bases: bases, HTTP: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
}

// Answer is one HTTP answer: its status, headers and body, and the body
// decoded when it is a JSON object.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Str is the string at key of the JSON object ("" when absent).
func (a Answer) Str(key string) string { s, _ := a.JSON[key].(string); return s }

// ErrCode is the API's error code (error.code), or "".
func (a Answer) ErrCode() string {
	if e, ok := a.JSON["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// Cookies are the cookies the answer sets.
func (a Answer) Cookies() []*http.Cookie { return (&http.Response{Header: a.Header}).Cookies() }

func (a Answer) String() string { return fmt.Sprintf("%d %s", a.Status, a.Body) }

// Base is the base URL the next request goes to.
func (c *Client) Base() string {
	if len(c.Bases) == 1 {
		return c.Bases[0]
	}
	return c.Bases[(c.n.Add(1)-1)%uint64(len(c.Bases))]
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return DefaultHTTP
}

// Do sends an API request: body (when not nil) encoded as JSON, token
// (when not "") as a bearer token.
func (c *Client) Do(method, path, token string, body any) (Answer, error) {
	var rd io.Reader
	hdr := map[string]string{}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Answer{}, err
		}
		rd = bytes.NewReader(b)
		hdr["Content-Type"] = "application/json"
	}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	return c.Request(method, path, hdr, rd)
}

// Must is Do, with an error when the status is not want.
func (c *Client) Must(want int, method, path, token string, body any) (Answer, error) {
	a, err := c.Do(method, path, token, body)
	if err != nil {
		return a, err
	}
	if a.Status != want {
		return a, fmt.Errorf("%s %s: status %d, want %d: %.300s", method, path, a.Status, want, a.Body)
	}
	return a, nil
}

// Request sends one request as given: hdr are its headers ("Host" sets
// the Host), body its body (nil: none). Redirects are followed or not as
// the client's http.Client says.
func (c *Client) Request(method, path string, hdr map[string]string, body io.Reader) (Answer, error) {
	req, err := http.NewRequest(method, c.Base()+path, body)
	if err != nil {
		return Answer{}, err
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := c.http().Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	a := Answer{Status: res.StatusCode, Header: res.Header, Body: b}
	_ = json.Unmarshal(b, &a.JSON)
	return a, nil
}

// Get fetches path and returns its status, discarding the body.
func (c *Client) Get(path string) (int, error) {
	res, err := c.http().Get(c.Base() + path)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}
