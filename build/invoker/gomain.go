package invoker

import (
	"bytes"
	_ "embed"
	"fmt"
	"go/format"
	"go/token"
	"strings"
	"text/template"
)

// goMainSource is the template of the main package ferry generates around
// a Go handler. It imports the user's package under the fixed name
// "function", so nothing in it can collide with the user's identifiers.
//
//go:embed go/main.go.tmpl
var goMainSource string

var goMainTemplate = template.Must(template.New("main.go").Parse(goMainSource))

// GoMain returns the gofmt'ed source of a package main that serves the Go
// function handler of the package pkgImportPath under the function
// contract. The handler is called through a generic adapter, so any func
// of the shape func(context.Context, T) (R, error) compiles; the compiler
// rejects anything else on the line that mentions function.<handler>.
func GoMain(pkgImportPath, handler string) ([]byte, error) {
	if !token.IsIdentifier(handler) || !token.IsExported(handler) {
		return nil, fmt.Errorf("Go handler %q is not the name of an exported func (use a name such as Handle)", handler)
	}
	if err := checkGoImportPath(pkgImportPath); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	data := struct{ ImportPath, Handler string }{pkgImportPath, handler}
	if err := goMainTemplate.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("generating the Go main for %s.%s: %w", pkgImportPath, handler, err)
	}
	src, err := format.Source(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting the Go main for %s.%s: %w", pkgImportPath, handler, err)
	}
	return src, nil
}

// checkGoImportPath accepts the import paths the go command accepts for a
// package in a module: slash-separated, non-empty elements of letters,
// digits and -._~+, none of them "." or "..".
func checkGoImportPath(p string) error {
	if p == "" {
		return fmt.Errorf("Go package import path is empty")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("Go package import path %q is not valid: element %q", p, elem)
		}
		for _, r := range elem {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~+", r)) {
				return fmt.Errorf("Go package import path %q is not valid: it contains %q", p, r)
			}
		}
	}
	return nil
}
