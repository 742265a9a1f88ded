package mxmesh

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/mxmesh/mxmesh"

// purePackages take inputs and return outputs: no I/O, no process clock, no
// global randomness, no goroutines (DESIGN.md, "Dependency rules").
var purePackages = map[string]bool{
	"homeserver/event":    true,
	"homeserver/auth":     true,
	"homeserver/stateres": true,
	"codec":               true,
	"noise":               true,
	"coap":                true,
	"homeserver/xmatrix":  true,
	"homeserver/keys":     true,
}

// pureForbiddenImports may not appear in a pure package's non-test files.
var pureForbiddenImports = []string{
	"net", "net/http", "database/sql", "os", "os/exec", "os/signal",
	"syscall", "math/rand", "crypto/rand", "io/ioutil", "log",
}

// pureForbiddenCalls are package-level functions that read the process clock,
// sleep, start timers or use global randomness.
var pureForbiddenCalls = map[string][]string{
	"time": {"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick"},
	"math/rand/v2": {"Int", "IntN", "Int32", "Int32N", "Int64", "Int64N", "Uint", "UintN",
		"Uint32", "Uint32N", "Uint64", "Uint64N", "Float32", "Float64", "Perm", "Shuffle",
		"NormFloat64", "ExpFloat64", "N"},
}

type pkgInfo struct {
	dir     string // relative to the module root, slash-separated
	imports map[string][]string
	files   []*ast.File
	fset    *token.FileSet
	names   []string
}

func loadPackages(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	pkgs := map[string]*pkgInfo{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		p := pkgs[dir]
		if p == nil {
			p = &pkgInfo{dir: dir, imports: map[string][]string{}, fset: token.NewFileSet()}
			pkgs[dir] = p
		}
		f, err := parser.ParseFile(p.fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		p.files = append(p.files, f)
		p.names = append(p.names, path)
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			p.imports[ip] = append(p.imports[ip], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// internal returns the module-relative path of an import of this module, or "".
func internal(ip string) string {
	if ip == module {
		return "."
	}
	if rest, ok := strings.CutPrefix(ip, module+"/"); ok {
		return rest
	}
	return ""
}

func under(pkg, root string) bool { return pkg == root || strings.HasPrefix(pkg, root+"/") }

// importAllowed applies DESIGN.md's import rules between this module's packages.
func importAllowed(from, to string) bool {
	if under(to, "cmd") {
		return false // nothing imports the binary
	}
	if purePackages[from] {
		return purePackages[to]
	}
	switch {
	case under(from, "homeserver"):
		return !under(to, "gateway") && !under(to, "sim")
	case under(from, "gateway"):
		return !under(to, "sim")
	case from == "clock":
		return false
	}
	return true // sim and cmd may import everything below cmd
}

func TestLayering(t *testing.T) {
	pkgs := loadPackages(t)
	if len(pkgs) == 0 {
		t.Fatal("no packages found")
	}
	dirs := make([]string, 0, len(pkgs))
	for d := range pkgs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		p := pkgs[dir]
		for ip, where := range p.imports {
			if to := internal(ip); to != "" && !importAllowed(dir, to) {
				t.Errorf("%s imports %s (in %s): not allowed by DESIGN.md's dependency rules", dir, to, where[0])
			}
			if purePackages[dir] {
				for _, bad := range pureForbiddenImports {
					if ip == bad {
						t.Errorf("pure package %s imports %q (in %s)", dir, ip, where[0])
					}
				}
			}
		}
		if purePackages[dir] {
			checkPureBodies(t.Errorf, p)
		}
	}
	for dir := range purePackages {
		if pkgs[dir] == nil {
			t.Errorf("pure package %s is missing", dir)
		}
	}
}

// checkPureBodies rejects go statements and calls of clock/global-random
// functions in a pure package.
func checkPureBodies(errorf func(format string, args ...any), p *pkgInfo) {
	for i, f := range p.files {
		local := map[string]string{} // local name → import path
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			name := ip[strings.LastIndex(ip, "/")+1:]
			if ip == "math/rand/v2" {
				name = "rand"
			}
			if imp.Name != nil {
				name = imp.Name.Name
			}
			local[name] = ip
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				errorf("pure package %s starts a goroutine at %s", p.dir, p.fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				id, ok := n.X.(*ast.Ident)
				if !ok {
					return true
				}
				for _, fn := range pureForbiddenCalls[local[id.Name]] {
					if n.Sel.Name == fn {
						errorf("pure package %s uses %s.%s at %s (%s)", p.dir, local[id.Name], fn,
							p.fset.Position(n.Pos()), p.names[i])
					}
				}
			}
			return true
		})
	}
}

func TestEveryPackageHasDoc(t *testing.T) {
	for dir, p := range loadPackages(t) {
		has := false
		for _, f := range p.files {
			if f.Doc != nil && strings.HasPrefix(strings.TrimSpace(f.Doc.Text()), "Package "+f.Name.Name) ||
				f.Name.Name == "main" && f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Command ") {
				has = true
			}
		}
		if !has {
			t.Errorf("package %s has no package doc comment", dir)
		}
	}
}

// TestLayeringCatchesViolations proves the checker fails on a bad package, so
// the layering test cannot pass vacuously.
func TestLayeringCatchesViolations(t *testing.T) {
	if importAllowed("homeserver", "gateway") || importAllowed("codec", "homeserver/store") ||
		importAllowed("gateway", "sim") || importAllowed("sim", "cmd/mxmesh") {
		t.Fatal("importAllowed permits a forbidden edge")
	}
	if !importAllowed("gateway", "homeserver") || !importAllowed("codec", "homeserver/event") ||
		!importAllowed("sim", "gateway") {
		t.Fatal("importAllowed forbids a permitted edge")
	}
	dir := t.TempDir()
	src := "package event\nimport (\"time\"; r \"math/rand/v2\")\nfunc f() { go f(); _ = time.Now(); _ = r.IntN(3) }\n"
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(dir, "x.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	errorf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	checkPureBodies(errorf, &pkgInfo{dir: "homeserver/event", files: []*ast.File{f}, fset: fset, names: []string{"x.go"}})
	if len(errs) != 3 {
		t.Fatalf("checker found %d violations in the probe, want 3: %q", len(errs), errs)
	}
}
