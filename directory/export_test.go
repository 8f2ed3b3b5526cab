package directory

import "time"

// SetClock replaces c's clock (group and policy caches), for tests.
func SetClock(c *Client, now func() time.Time) { c.now = now }
