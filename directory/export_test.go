package directory

import "time"

// SetClock replaces c's clock (group and policy caches), for tests.
func SetClock(c *Client, now func() time.Time) { c.now = now }

// SetPageSize sets the entries per page of c's paged searches (Lister), for tests.
func SetPageSize(c *Client, n int) { c.pageSize = n }
