package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// staticFile is one file under /static/, read at start-up.
type staticFile struct {
	body, gzipped []byte
	etag, ctype   string
}

// staticFiles reads every file of fsys (the embedded templates/static) at
// start-up, with its gzip form and a content hash for its ETag.
func staticFiles(fsys fs.FS) (map[string]staticFile, error) {
	files := map[string]staticFile{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		if _, err := w.Write(body); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		files[name] = staticFile{body: body, gzipped: z.Bytes(), ctype: ctype,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return files, err
}

// serveStatic answers GET /static/<file>: the file only (a folder, or a
// name not among the files, is 404: no listing), gzip-compressed when the
// client takes it, and cached with revalidation (no-cache and an ETag of
// its content: a new release's file is fetched at once, an unchanged one
// is a 304 with no body).
func serveStatic(files map[string]staticFile) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, ok := files[c.Param("*")]
		if !ok {
			return echo.ErrNotFound
		}
		h := c.Response().Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("Vary", "Accept-Encoding")
		if inm := c.Request().Header.Get("If-None-Match"); inm != "" && etagMatches(inm, f.etag) {
			return c.NoContent(http.StatusNotModified)
		}
		if acceptsGzip(c.Request().Header.Get("Accept-Encoding")) && len(f.gzipped) < len(f.body) {
			h.Set("Content-Encoding", "gzip")
			return c.Blob(http.StatusOK, f.ctype, f.gzipped)
		}
		return c.Blob(http.StatusOK, f.ctype, f.body)
	}
}

// etagMatches reports whether an If-None-Match header names etag (or *).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip (a
// q=0 refuses it).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(strings.TrimSpace(params), " ", ""), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err != nil || v > 0
	}
	return false
}

// favicon answers /favicon.ico, which browsers ask for on every site
// that names no icon: 204 and cached for a day, not a 404 in the
// browser's console.
func favicon(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return c.NoContent(http.StatusNoContent)
}
