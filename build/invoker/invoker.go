package invoker

import (
	"embed"
	"fmt"
	"path"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

//go:embed python/ferry_invoker.py nodejs/ferry_invoker.js
var interpreterInvokers embed.FS

// interpretedRuntime is where one interpreted runtime's invoker lives: in
// this package (embedded) and inside the image.
type interpretedRuntime struct {
	embedded    string // path in interpreterInvokers
	interpreter string // the program the image's entrypoint runs
}

// imageInvokerDir is the invoker's folder inside an image, without the
// leading slash; the invokers find /ferry/function and the dependencies
// relative to it.
const imageInvokerDir = "ferry/invoker"

var interpretedRuntimes = map[string]interpretedRuntime{
	v1alpha1.RuntimePython: {embedded: "python/ferry_invoker.py", interpreter: "python3"},
	v1alpha1.RuntimeNodeJS: {embedded: "nodejs/ferry_invoker.js", interpreter: "node"},
}

func lookupInterpreted(runtime string) (interpretedRuntime, error) {
	r, ok := interpretedRuntimes[runtime]
	if ok {
		return r, nil
	}
	if runtime == v1alpha1.RuntimeGo {
		return r, fmt.Errorf("runtime %q has no invoker files: a Go function is compiled with ferry's generated main; invoker files exist for %s and %s",
			runtime, v1alpha1.RuntimePython, v1alpha1.RuntimeNodeJS)
	}
	return r, fmt.Errorf("unknown runtime %q: invoker files exist for %s and %s", runtime, v1alpha1.RuntimePython, v1alpha1.RuntimeNodeJS)
}

// Files returns the runtime's invoker files keyed by their path inside the
// image, without a leading slash ("ferry/invoker/ferry_invoker.py"), for
// the python and nodejs runtimes; an error naming the supported runtimes
// otherwise. The caller owns the returned map and slices.
func Files(runtime string) (map[string][]byte, error) {
	r, err := lookupInterpreted(runtime)
	if err != nil {
		return nil, err
	}
	content, err := interpreterInvokers.ReadFile(r.embedded)
	if err != nil {
		return nil, fmt.Errorf("reading the embedded %s invoker: %w", runtime, err)
	}
	return map[string][]byte{path.Join(imageInvokerDir, path.Base(r.embedded)): content}, nil
}

// Entrypoint is the image's entrypoint for the runtime: ["python3",
// "/ferry/invoker/ferry_invoker.py"] or ["node",
// "/ferry/invoker/ferry_invoker.js"]; an error naming the supported
// runtimes for any other.
func Entrypoint(runtime string) ([]string, error) {
	r, err := lookupInterpreted(runtime)
	if err != nil {
		return nil, err
	}
	return []string{r.interpreter, "/" + path.Join(imageInvokerDir, path.Base(r.embedded))}, nil
}
