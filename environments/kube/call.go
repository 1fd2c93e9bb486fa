package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// ceTypeHTTP is the type of the event a plain HTTP request becomes, as
// the embedded gateway names it.
const ceTypeHTTP = "dev.ferry.http.request"

// Call implements environments.Target. With a GatewayURL the request goes
// there, as a user's would. Without one, ferry plays the gateway: the
// HTTPTrigger whose path and methods match picks the function (404 and
// 405 answers as the embedded gateway gives them otherwise), a plain
// request becomes a binary-mode CloudEvent, and it goes to one of the
// function's ready pods through a port-forward.
func (t *Target) Call(ctx context.Context, req *http.Request) (*http.Response, error) {
	if t.cfg.GatewayURL != "" {
		base, err := url.Parse(strings.TrimRight(t.cfg.GatewayURL, "/"))
		if err != nil {
			return nil, fmt.Errorf("environment %s: gateway URL: %w", t.cfg.Environment, err)
		}
		u := *req.URL
		u.Scheme, u.Host, u.User = base.Scheme, base.Host, nil
		u.Path = base.Path + "/" + strings.TrimLeft(req.URL.Path, "/")
		u.RawPath = ""
		out := req.Clone(ctx)
		out.URL, out.Host, out.RequestURI = &u, "", ""
		resp, err := callClient.Do(out)
		if err != nil {
			return nil, fmt.Errorf("environment %s: calling its gateway: %w; check the environment's gateway URL in the server configuration", t.cfg.Environment, err)
		}
		return resp, nil
	}
	routes, err := t.liveRoutes(ctx)
	if err != nil {
		return nil, err
	}
	p := routePath(req.URL.Path)
	var onPath []route
	for _, r := range routes {
		if r.path == p {
			onPath = append(onPath, r)
		}
	}
	if len(onPath) == 0 {
		return answer(req, http.StatusNotFound, nil, fmt.Sprintf("no route %s in environment %s", p, t.cfg.Environment)), nil
	}
	var match *route
	var allow []string
	for i, r := range onPath {
		if len(r.methods) == 0 && match == nil {
			match = &onPath[i]
		}
		for _, m := range r.methods {
			allow = append(allow, strings.ToUpper(m))
			if strings.EqualFold(m, req.Method) {
				match = &onPath[i]
			}
		}
	}
	if match == nil {
		slices.Sort(allow)
		allowed := strings.Join(allow, ", ")
		return answer(req, http.StatusMethodNotAllowed, http.Header{"Allow": {allowed}},
			fmt.Sprintf("%s %s in environment %s answers %s only", req.Method, p, t.cfg.Environment, allowed)), nil
	}
	fw, err := t.forward(ctx, match.function)
	if err != nil {
		return nil, err
	}
	return fw.do(t.toPod(ctx, req, *match, fw.host))
}

// toPod is req as the embedded gateway forwards it on r's route, sent to
// host: a plain request becomes a binary-mode CloudEvent with the same
// attributes; a CloudEvent passes as it is.
func (t *Target) toPod(ctx context.Context, req *http.Request, r route, host string) *http.Request {
	out := req.Clone(ctx)
	u := *req.URL
	u.Scheme, u.Host, u.User = "http", host, nil
	out.URL, out.Host, out.RequestURI = &u, "", ""
	if len(req.Header["Ce-Specversion"]) == 0 {
		ev := environments.Event{
			ID: newEventID(), Source: "/" + t.cfg.Environment + r.path, Type: ceTypeHTTP,
			Extensions: map[string]string{"httpmethod": req.Method, "httppath": req.URL.Path, "httpquery": req.URL.RawQuery},
		}
		ev.SetHeaders(out.Header)
	}
	return out
}

// Deliver implements environments.Target: ev goes to one of the
// function's ready pods through a port-forward, whatever the gateway.
func (t *Target) Deliver(ctx context.Context, function string, ev *environments.Event) (*http.Response, error) {
	fw, err := t.forward(ctx, function)
	if err != nil {
		return nil, err
	}
	req, err := ev.Request(ctx, "http://"+fw.host+"/")
	if err != nil {
		fw.stop()
		return nil, err
	}
	return fw.do(req)
}

// forwarded is a port-forward to one pod, open for one request.
type forwarded struct {
	host   string // 127.0.0.1:PORT
	stop   func()
	client *http.Client
}

// do sends req through the forward; closing the answer's body, or a
// failure, ends the forward.
func (f *forwarded) do(req *http.Request) (*http.Response, error) {
	resp, err := f.client.Do(req)
	if err != nil {
		f.stop()
		return nil, err
	}
	resp.Body = &stopBody{ReadCloser: resp.Body, stop: f.stop}
	return resp, nil
}

type stopBody struct {
	io.ReadCloser
	stop func()
}

func (b *stopBody) Close() error {
	err := b.ReadCloser.Close()
	b.stop()
	return err
}

// forward opens a port-forward from a loopback port to FunctionPort of a
// ready pod of function: over a websocket, or SPDY where the API server
// does not take one (as kubectl port-forward does).
func (t *Target) forward(ctx context.Context, function string) (*forwarded, error) {
	pod, err := t.readyPod(ctx, function)
	if err != nil {
		return nil, err
	}
	u := t.core.CoreV1().RESTClient().Post().Resource("pods").Namespace(t.namespace).Name(pod).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(t.rest)
	if err != nil {
		return nil, fmt.Errorf("environment %s: port-forward to pod %s: %w", t.cfg.Environment, pod, err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, t.rest)
	if err != nil {
		return nil, fmt.Errorf("environment %s: port-forward to pod %s: %w", t.cfg.Environment, pod, err)
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	fctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	errOut := &lockedBuffer{}
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", FunctionPort)}, ready, io.Discard, errOut)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("environment %s: port-forward to pod %s: %w", t.cfg.Environment, pod, err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		if more := strings.TrimSpace(errOut.String()); more != "" {
			err = fmt.Errorf("%w (%s)", err, more)
		}
		return nil, fmt.Errorf("environment %s: port-forward to pod %s of function %s: %w", t.cfg.Environment, pod, function, err)
	case <-ctx.Done():
		cancel()
		<-done
		return nil, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		cancel()
		<-done
		return nil, fmt.Errorf("environment %s: port-forward to pod %s: no local port: %v", t.cfg.Environment, pod, err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: callClient.CheckRedirect,
	}
	return &forwarded{host: fmt.Sprintf("127.0.0.1:%d", ports[0].Local), stop: stop, client: client}, nil
}

// readyPod picks a ready pod of function, one running the Function's
// image when there is one (during a rollout the old pods are ready too).
func (t *Target) readyPod(ctx context.Context, function string) (string, error) {
	u, err := t.dyn.Resource(kindFunction.resource).Namespace(t.namespace).Get(ctx, function, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("environment %s has no function %s (namespace %s)", t.cfg.Environment, function, t.namespace)
	}
	if err != nil {
		return "", t.apiError("reading function "+function, err)
	}
	var f v1alpha1.Function
	if err := fromUnstructured(u, &f); err != nil {
		return "", err
	}
	sel := LabelFunction + "=" + function
	pods, err := t.core.CoreV1().Pods(t.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return "", t.apiError("listing the pods of function "+function, err)
	}
	var ready []corev1.Pod
	var why []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
			ready = append(ready, p)
			continue
		}
		why = append(why, p.Name+" ("+podTrouble(&p)+")")
	}
	if len(ready) == 0 {
		detail := fmt.Sprintf("no pod has the label %s; the controller makes them from the Function: %s", sel, t.noControllerHint())
		if len(pods.Items) > 0 {
			detail = fmt.Sprintf("%d %s, none ready: %s", len(pods.Items), plural(len(pods.Items), "pod", "pods"), strings.Join(why, "; "))
		}
		return "", fmt.Errorf("function %s has no ready pod in namespace %s: %s", function, t.namespace, detail)
	}
	for _, p := range ready {
		for _, c := range p.Spec.Containers {
			if c.Image == f.Spec.Image {
				return p.Name, nil
			}
		}
	}
	return ready[0].Name, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podTrouble says in a few words why a pod is not ready.
func podTrouble(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return strings.TrimSpace(w.Reason + ": " + w.Message)
		}
		if term := cs.State.Terminated; term != nil {
			return fmt.Sprintf("exited %d: %s", term.ExitCode, term.Reason)
		}
	}
	if p.Status.Phase == corev1.PodRunning {
		return "running, not ready"
	}
	s := string(p.Status.Phase)
	if p.Status.Message != "" {
		s += ": " + p.Status.Message
	}
	return s
}

// routesOf are the HTTP routes of a release's triggers for this
// environment.
func routesOf(set *manifests.Set) []route {
	out := []route{}
	for _, tr := range set.HTTPTriggers {
		out = append(out, route{path: routePath(tr.Spec.Path), methods: tr.Spec.Methods, function: tr.Spec.Function, trigger: tr.Name})
	}
	return out
}

func (t *Target) setRoutes(r []route) {
	t.routesMu.Lock()
	t.routes = r
	t.routesMu.Unlock()
}

// liveRoutes are the live release's HTTP routes: those Apply set, or,
// in a ferry that has applied nothing since it started, the
// HTTPTriggers in the cluster.
func (t *Target) liveRoutes(ctx context.Context) ([]route, error) {
	t.routesMu.Lock()
	r := t.routes
	t.routesMu.Unlock()
	if r != nil {
		return r, nil
	}
	objs, err := t.list(ctx, kindHTTPTrigger, t.selector())
	if err != nil {
		return nil, err
	}
	r = []route{}
	for i := range objs {
		var tr v1alpha1.HTTPTrigger
		if err := fromUnstructured(&objs[i], &tr); err != nil {
			return nil, err
		}
		r = append(r, route{path: routePath(tr.Spec.Path), methods: tr.Spec.Methods, function: tr.Spec.Function, trigger: tr.Name})
	}
	slices.SortFunc(r, func(a, b route) int { return strings.Compare(a.trigger, b.trigger) })
	t.setRoutes(r)
	return r, nil
}

// routePath is a path as the embedded gateway matches it: rooted, clean,
// with no trailing slash.
func routePath(p string) string {
	return path.Clean("/" + p)
}

// answer is a response ferry gives itself, as the embedded gateway
// would: {"error": msg}.
func answer(req *http.Request, code int, h http.Header, msg string) *http.Response {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	body = append(body, '\n')
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{
		Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		Request: req,
	}
}

// newEventID is a random id for the event a plain request becomes.
func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// lockedBuffer is the port-forward's error output, written from its
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
