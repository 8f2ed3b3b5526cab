package main

// There is no Docker engine where the tests run, so these tests check the
// container build without one: the binary is built the way the Dockerfile's
// build stage builds it (its ENV, ARG defaults and `go build` command are
// read from the Dockerfile, from a build context filtered by .dockerignore)
// and checked to be static, stripped and working; the runtime stage and the
// compose example are checked against each other and against latchkey's own
// configuration loader.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"debug/buildinfo"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/config"
)

const repoRoot = "../.."

// ---------------------------------------------------------------- Dockerfile

type instruction struct {
	cmd  string // upper case
	args string // the rest, continuation lines joined
	line int
}

type stage struct {
	from, name string
	ins        []instruction
}

type dockerfile struct {
	globalArgs map[string]string
	stages     []*stage
}

func parseDockerfile(t *testing.T, file string) *dockerfile {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ins []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue // comments (also between continuation lines) and blank lines
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		if full == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(full, " ")
		if strings.Contains(rest, "<<") {
			t.Fatalf("%s:%d: heredocs are not understood by this test", file, start)
		}
		ins = append(ins, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest), line: start})
	}
	df := &dockerfile{globalArgs: map[string]string{}}
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := &stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			if in.cmd == "ARG" {
				k, v, _ := strings.Cut(in.args, "=")
				df.globalArgs[k] = v
			}
			continue
		}
		st := df.stages[len(df.stages)-1]
		st.ins = append(st.ins, in)
	}
	return df
}

func (df *dockerfile) stage(t *testing.T, name string) *stage {
	t.Helper()
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile: no stage %q", name)
	return nil
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm parses a JSON-array instruction argument.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Fatalf("Dockerfile:%d: %s is not in exec (JSON array) form: %v", in.line, in.cmd, err)
	}
	return v
}

// shellWords splits a shell command line the way sh would for the simple
// commands a Dockerfile RUN uses: quotes, backslash escapes, $VAR and
// ${VAR} expansion (not inside single quotes). "&&" and ";" come back as
// words of their own. Anything fancier fails.
func shellWords(t *testing.T, s string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	expand := func(i int) int { // s[i] == '$'; returns the index after the reference
		j := i + 1
		var name string
		if j < len(s) && s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				t.Fatalf("unterminated ${ in %q", s)
			}
			name = s[j+1 : j+end]
			if strings.ContainsAny(name, ":-+?#%/") {
				t.Fatalf("parameter expansion %q is not understood by this test", name)
			}
			j += end + 1
		} else {
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name = s[i+1 : j]
		}
		if name == "" {
			w.WriteByte('$')
			return i + 1
		}
		w.WriteString(vars[name])
		return j
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for i < len(s) && s[i] != '"' {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0:
					w.WriteByte(s[i+1])
					i += 2
				case s[i] == '$':
					i = expand(i)
				case s[i] == '`':
					t.Fatalf("command substitution in %q", s)
				default:
					w.WriteByte(s[i])
					i++
				}
			}
			if i >= len(s) {
				t.Fatalf("unterminated \" in %q", s)
			}
			i++
		case c == '\\' && i+1 < len(s):
			w.WriteByte(s[i+1])
			inWord = true
			i += 2
		case c == '$':
			inWord = true
			i = expand(i)
		case c == '&' && strings.HasPrefix(s[i:], "&&"), c == ';':
			flush()
			if c == ';' {
				words = append(words, ";")
				i++
			} else {
				words = append(words, "&&")
				i += 2
			}
		case strings.IndexByte("|<>(){}`", c) >= 0:
			t.Fatalf("shell syntax %q in %q is not understood by this test", c, s)
		default:
			w.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words
}

// goBuild is the build stage's `go build`, ready to run here.
type goBuild struct {
	env     []string // the stage's ENV and the command's own assignments
	args    []string // after "go"
	out     string   // the -o path in the image
	workdir string
}

// testVersion is what the test stamps in place of the VERSION build arg.
const testVersion = "v0.0.0-dockerfile-test"

func buildStageCommand(t *testing.T, df *dockerfile) goBuild {
	t.Helper()
	st := df.stage(t, "build")
	vars := map[string]string{}
	for k, v := range df.globalArgs {
		vars[k] = v
	}
	var gb goBuild
	found := false
	for _, in := range st.ins {
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			if _, global := df.globalArgs[k]; !global || v != "" {
				vars[k] = v
			}
		case "ENV":
			for _, kv := range shellWords(t, in.args, vars) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile:%d: ENV in the legacy `ENV key value` form", in.line)
				}
				vars[k] = v
				gb.env = append(gb.env, k+"="+v)
			}
		case "WORKDIR":
			gb.workdir = in.args
		case "RUN":
			// The platform arguments BuildKit sets: build for this machine.
			run := map[string]string{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "VERSION": testVersion}
			for k, v := range vars {
				if _, ok := run[k]; !ok {
					run[k] = v
				}
			}
			words := shellWords(t, in.args, run)
			for len(words) > 0 && strings.HasPrefix(words[0], "--") {
				words = words[1:] // RUN flags: --mount=..., --network=...
			}
			var cmds [][]string
			var cur []string
			for _, w := range words {
				if w == "&&" || w == ";" {
					cmds, cur = append(cmds, cur), nil
					continue
				}
				cur = append(cur, w)
			}
			cmds = append(cmds, cur)
			for _, c := range cmds {
				i := 0
				var assign []string
				for i < len(c) && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(c[i]) {
					assign = append(assign, c[i])
					i++
				}
				if len(c) < i+2 || c[i] != "go" || c[i+1] != "build" {
					continue
				}
				if found {
					t.Fatalf("Dockerfile:%d: a second `go build` in the build stage", in.line)
				}
				found = true
				gb.env = append(gb.env, assign...)
				gb.args = c[i+1:]
			}
		}
	}
	if !found {
		t.Fatal("Dockerfile: no `go build` in the build stage")
	}
	for i, a := range gb.args {
		if a == "-o" && i+1 < len(gb.args) {
			gb.out = gb.args[i+1]
		}
	}
	if gb.out == "" {
		t.Fatal("Dockerfile: the build stage's go build has no -o")
	}
	return gb
}

func TestDockerfileStages(t *testing.T) {
	df := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	build := df.stage(t, "build")
	gb := buildStageCommand(t, df)

	// The Go image matches go.mod's language version.
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	image := os.Expand(build.from, func(k string) string { return df.globalArgs[k] })
	if !strings.HasPrefix(image, "golang:"+string(m[1])) {
		t.Errorf("build stage FROM %s, go.mod says go %s", image, m[1])
	}

	env := strings.Join(gb.env, " ")
	for _, want := range []string{"CGO_ENABLED=0"} {
		if !slices.Contains(gb.env, want) {
			t.Errorf("build stage env %q lacks %s", env, want)
		}
	}
	args := strings.Join(gb.args, " ")
	if !slices.Contains(gb.args, "-trimpath") {
		t.Errorf("go %s: no -trimpath", args)
	}
	ld := ""
	for i, a := range gb.args {
		if a == "-ldflags" && i+1 < len(gb.args) {
			ld = gb.args[i+1]
		} else if v, ok := strings.CutPrefix(a, "-ldflags="); ok {
			ld = v
		}
	}
	for _, f := range []string{"-s", "-w", "-X main.version=" + testVersion} {
		if !strings.Contains(" "+ld+" ", " "+f+" ") {
			t.Errorf("go %s: -ldflags %q lacks %q", args, ld, f)
		}
	}
	if gb.args[len(gb.args)-1] != "./cmd/latchkey" {
		t.Errorf("go %s: does not build ./cmd/latchkey", args)
	}
	if copies := build.all("COPY"); !slices.ContainsFunc(copies, func(in instruction) bool { return in.args == ". ." }) {
		t.Error("build stage: no `COPY . .` (the test builds from the whole filtered context)")
	}

	// The runtime stage.
	final := df.stages[len(df.stages)-1]
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("runtime stage FROM %s, want distroless/static or scratch", final.from)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Error("runtime stage: no USER (it would run as root)")
	} else if u, _, _ := strings.Cut(users[len(users)-1].args, ":"); u == "root" || u == "0" {
		t.Errorf("runtime stage: USER %s", users[len(users)-1].args)
	}
	if ep := final.all("ENTRYPOINT"); len(ep) != 1 || !slices.Equal(execForm(t, ep[0]), []string{"/latchkey"}) {
		t.Errorf("ENTRYPOINT: %v", ep)
	}
	if cmd := final.all("CMD"); len(cmd) != 1 || !slices.Equal(execForm(t, cmd[0]), []string{"serve", "--config", "/etc/latchkey/latchkey.yaml"}) {
		t.Errorf("CMD: %v", cmd)
	}
	vols := final.all("VOLUME")
	if len(vols) != 1 || !slices.Contains(execForm(t, vols[0]), "/var/lib/latchkey") {
		t.Errorf("VOLUME: %v", vols)
	}
	binCopied := false
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.args)
		if slices.Contains(f, "--from=build") && f[len(f)-2] == gb.out && f[len(f)-1] == "/latchkey" {
			binCopied = true
		}
		if f[len(f)-1] == "/var/lib/latchkey" && !slices.Contains(f, "--chown=65532:65532") {
			t.Errorf("Dockerfile:%d: the state directory is not owned by the runtime user", in.line)
		}
	}
	if !binCopied {
		t.Errorf("runtime stage does not COPY --from=build %s /latchkey", gb.out)
	}
}

// ---------------------------------------------------------------- .dockerignore

type ignorePattern struct {
	re      *regexp.Regexp
	exclude bool // false for "!" exceptions
}

// readDockerignore follows moby/patternmatcher: patterns are cleaned,
// relative to the context root, Go filepath.Match syntax plus "**"; the
// last pattern that matches a path or one of its parent directories wins.
func readDockerignore(t *testing.T, file string) []ignorePattern {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []ignorePattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{exclude: true}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			p.exclude, line = false, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(path.Clean(line), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			case c == '[':
				end := strings.IndexByte(line[i:], ']')
				if end < 0 {
					t.Fatalf(".dockerignore: bad pattern %q", line)
				}
				re.WriteString(strings.Replace(line[i:i+end+1], "[!", "[^", 1))
				i += end
			case c == '\\' && i+1 < len(line):
				re.WriteString(regexp.QuoteMeta(string(line[i+1])))
				i++
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		p.re = regexp.MustCompile(re.String())
		out = append(out, p)
	}
	return out
}

func ignored(patterns []ignorePattern, rel string) bool {
	excluded := false
	for _, p := range patterns {
		for q := rel; q != "." && q != "/" && q != ""; q = path.Dir(q) {
			if p.re.MatchString(q) {
				excluded = p.exclude
				break
			}
		}
	}
	return excluded
}

// buildContext copies the files of the repository that .dockerignore lets
// into the build context to dir.
func buildContext(t *testing.T, dir string) []string {
	t.Helper()
	patterns := readDockerignore(t, filepath.Join(repoRoot, ".dockerignore"))
	var files []string
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ignored(patterns, rel) || !d.Type().IsRegular() {
			return nil
		}
		files = append(files, rel)
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDockerignore(t *testing.T) {
	patterns := readDockerignore(t, filepath.Join(repoRoot, ".dockerignore"))
	for rel, want := range map[string]bool{
		".git/config":                       true,
		"go.mod":                            false,
		"go.sum":                            false,
		"cmd/latchkey/main.go":              false,
		"cmd/latchkey/dockerfile_test.go":   true,
		"templates/pages/layout.html":       false,
		"store/schema.sql":                  false,
		"directory/dirtest/testdata/x.ldif": true,
		"deploy/secrets/ldap-bind":          true,
		"deploy/compose.yaml":               true,
		"latchkey":                          true,
		"cmd/latchkey/latchkey":             false,
		"var/latchkey.db":                   true,
		"some/dir/tls.key":                  true,
		"README.md":                         true,
		".env":                              true,
	} {
		if got := ignored(patterns, rel); got != want {
			t.Errorf("%s: ignored %v, want %v", rel, got, want)
		}
	}
}

// ---------------------------------------------------------------- the build

// TestDockerBuildStage builds the binary as the Dockerfile's build stage
// does, from a context filtered by .dockerignore, and checks the result.
func TestDockerBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary from scratch flags (-trimpath): slow")
	}
	if runtime.GOOS != "linux" {
		t.Skip("checks a Linux ELF binary")
	}
	df := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	gb := buildStageCommand(t, df)

	ctxDir := t.TempDir()
	files := buildContext(t, ctxDir)
	t.Logf("build context: %d files", len(files))
	bin := filepath.Join(t.TempDir(), "latchkey")
	args := slices.Clone(gb.args)
	for i := range args {
		if i > 0 && args[i-1] == "-o" {
			args[i] = bin
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ctxDir // WORKDIR, with COPY . .
	cmd.Env = append(cleanGoEnv(), gb.env...)
	t.Logf("(in %s) %s go %s", gb.workdir, strings.Join(gb.env, " "), strings.Join(args, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build from the .dockerignore-filtered context failed (a file the build needs is ignored?): %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is not static", p.Type)
		}
	}
	if f.Section(".interp") != nil || f.Section(".dynamic") != nil {
		t.Error("the binary has .interp/.dynamic sections: it is not static")
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not apply")
	}
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("the binary has DWARF section %s: -w did not apply", s.Name)
			break
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if abs, _ := filepath.Abs(repoRoot); bytes.Contains(data, []byte(abs)) || bytes.Contains(data, []byte(ctxDir)) {
		t.Error("the binary contains a build path: -trimpath did not apply")
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings %v", bi.Settings)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("latchkey version: %v\n%s", err, out)
	}
	if got, want := string(out), "latchkey "+testVersion+"\n"; got != want {
		t.Errorf("latchkey version printed %q, want %q", got, want)
	}
	t.Logf("%d bytes, %s", len(data), bytes.TrimSpace(out))
}

// cleanGoEnv is the environment without settings the Dockerfile decides.
func cleanGoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOARM64", "GOEXPERIMENT", "CC", "CGO_LDFLAGS", "CGO_CFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// ---------------------------------------------------------------- deploy/

type composeFile struct {
	Services map[string]struct {
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Ports   []string `yaml:"ports"`
		Configs []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
		Secrets []string `yaml:"secrets"`
		Volumes []string `yaml:"volumes"`
	} `yaml:"services"`
	Configs map[string]struct {
		File string `yaml:"file"`
	} `yaml:"configs"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

const deployDir = "../../deploy"

func TestComposeExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	svc, ok := cf.Services["latchkey"]
	if !ok {
		t.Fatal("compose.yaml: no latchkey service")
	}
	exists := func(what, rel string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(deployDir, filepath.FromSlash(rel))); err != nil {
			t.Errorf("compose.yaml: %s %s does not exist: %v", what, rel, err)
		}
	}
	exists("build context", svc.Build.Context)
	exists("Dockerfile", path.Join(svc.Build.Context, svc.Build.Dockerfile))

	df := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	final := df.stages[len(df.stages)-1]
	if len(svc.Command) > 0 {
		if cmd := final.all("CMD"); len(cmd) == 1 && !slices.Equal(svc.Command, execForm(t, cmd[0])) {
			t.Errorf("compose.yaml command %v differs from the Dockerfile's CMD %s", svc.Command, cmd[0].args)
		}
	}
	configPath := "/etc/latchkey/latchkey.yaml"
	var configFile string
	for _, c := range svc.Configs {
		cfg, ok := cf.Configs[c.Source]
		if !ok {
			t.Errorf("compose.yaml: config %s is not defined", c.Source)
			continue
		}
		exists("config "+c.Source, cfg.File)
		if c.Target == configPath {
			configFile = cfg.File
		}
	}
	if configFile == "" {
		t.Fatalf("compose.yaml: nothing is mounted at %s, where the image's CMD reads its configuration", configPath)
	}

	// Secrets: every one lives in deploy/secrets/ (git-ignored) and is
	// explained in deploy/README.md.
	readme, err := os.ReadFile(filepath.Join(deployDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(deployDir, "secrets", ".gitignore")); err != nil {
		t.Errorf("deploy/secrets/.gitignore: %v", err)
	}
	mounted := map[string]bool{}
	for _, name := range svc.Secrets {
		s, ok := cf.Secrets[name]
		if !ok {
			t.Errorf("compose.yaml: secret %s is not defined", name)
			continue
		}
		if path.Dir(path.Clean(s.File)) != "secrets" {
			t.Errorf("compose.yaml: secret %s is read from %s, not from secrets/ (which git ignores)", name, s.File)
		}
		if !bytes.Contains(readme, []byte("secrets/"+path.Base(s.File))) {
			t.Errorf("deploy/README.md does not say how to create %s", s.File)
		}
		mounted["/run/secrets/"+name] = true
	}

	// Volumes: named ones are declared; bind mounts exist; the state
	// directory is the image's VOLUME.
	state := false
	for _, v := range svc.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			exists("bind mount", src)
		} else if _, ok := cf.Volumes[src]; !ok {
			t.Errorf("compose.yaml: volume %s is not declared", src)
		}
		if dst == "/var/lib/latchkey" {
			state = true
		}
	}
	if !state {
		t.Error("compose.yaml: nothing is mounted at /var/lib/latchkey")
	}

	// The configuration: its *_file secrets are exactly the mounted ones,
	// its listen port is the published one, and it passes latchkey's own
	// loading and validation (with made-up secrets).
	cfgPath := filepath.Join(deployDir, filepath.FromSlash(configFile))
	cfgText, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*[a-z_]+_file:\s*(/run/secrets/[A-Za-z0-9._-]+)\s*(#.*)?$`).FindAllStringSubmatch(string(cfgText), -1) {
		used[m[1]] = true
	}
	for s := range used {
		if !mounted[s] {
			t.Errorf("%s reads %s, which compose.yaml does not mount", configFile, s)
		}
	}
	for s := range mounted {
		if !used[s] {
			t.Errorf("compose.yaml mounts %s, which %s does not use", s, configFile)
		}
	}
	tmp := t.TempDir()
	text := string(cfgText)
	for s := range used {
		secret := make([]byte, 48)
		rand.Read(secret)
		f := filepath.Join(tmp, path.Base(s))
		if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, s, f)
	}
	testCfg := filepath.Join(tmp, "latchkey.yaml")
	if err := os.WriteFile(testCfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(testCfg, config.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("%s does not pass latchkey's configuration checks: %v", configFile, err)
	}
	for _, w := range cfg.Warnings {
		t.Errorf("%s: warning: %s", configFile, w)
	}
	if !strings.HasPrefix(cfg.Store.DSN, "file:/var/lib/latchkey/") {
		t.Errorf("store.dsn %q is not on the /var/lib/latchkey volume", cfg.Store.DSN)
	}
	_, port, _ := strings.Cut(cfg.Server.Listen, ":")
	if host, _, _ := strings.Cut(cfg.Server.Listen, ":"); host != "" && host != "0.0.0.0" && host != "[::]" {
		t.Errorf("server.listen %q: a container must listen on every interface", cfg.Server.Listen)
	}
	published := false
	for _, p := range svc.Ports {
		parts := strings.Split(p, ":")
		if parts[len(parts)-1] == port {
			published = true
		}
	}
	if !published {
		t.Errorf("compose.yaml publishes %v, the gateway listens on port %s", svc.Ports, port)
	}
	if expose := final.all("EXPOSE"); len(expose) != 1 || strings.TrimSuffix(expose[0].args, "/tcp") != port {
		t.Errorf("Dockerfile EXPOSE %v, the gateway listens on port %s", expose, port)
	}

	// Every key of the example is a key of config.example.yaml.
	example, err := os.ReadFile(filepath.Join(repoRoot, "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	exampleKeys, deployKeys := map[string]bool{}, map[string]bool{}
	yamlKeys(t, example, exampleKeys)
	yamlKeys(t, cfgText, deployKeys)
	for k := range deployKeys {
		if !exampleKeys[k] {
			t.Errorf("%s: key %s is not in config.example.yaml", configFile, k)
		}
	}
}

// yamlKeys collects the dotted key paths of a YAML document's mappings.
func yamlKeys(t *testing.T, data []byte, out map[string]bool) {
	t.Helper()
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := strings.TrimPrefix(prefix+"."+k, ".")
			out[key] = true
			if sub, ok := v.(map[string]any); ok {
				walk(key, sub)
			}
		}
	}
	walk("", root)
}
