package main

import (
	"context"
	"encoding/json"
	stderrors "errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// attempt is one HTTP request client-go sent for a client, as the wrapping RoundTripper saw it.
type attempt struct {
	// N counts a client's attempts from 1.
	N int `json:"n"`
	// StartMs and EndMs: milliseconds since the tool started, when the request was handed to the
	// transport and when its response headers (or error) came back.
	StartMs float64 `json:"startMs"`
	EndMs   float64 `json:"endMs"`
	Status  int     `json:"status"`
	// RetryAfter is the Retry-After header as sent ("" when absent).
	RetryAfter string `json:"retryAfter"`
	// Reused: the request went out on a connection opened earlier (httptrace GotConn).
	Reused bool   `json:"reused"`
	Error  string `json:"error,omitempty"`
}

// statusFields are the fields of the *metav1.Status behind an error (errors.APIStatus).
type statusFields struct {
	Status            string `json:"status"`
	Reason            string `json:"reason"`
	Code              int32  `json:"code"`
	Message           string `json:"message"`
	RetryAfterSeconds *int32 `json:"retryAfterSeconds"`
}

type clientResult struct {
	Client int  `json:"client"`
	OK     bool `json:"ok"`
	// Code is the final HTTP status client-go reports (Result.StatusCode).
	Code                  int           `json:"code"`
	Error                 string        `json:"error,omitempty"`
	IsTooManyRequests     bool          `json:"isTooManyRequests"`
	SuggestsClientDelay   int           `json:"suggestsClientDelay"`
	SuggestsClientDelayOK bool          `json:"suggestsClientDelayOk"`
	Status                *statusFields `json:"status"`
	WarmupStatus          int           `json:"warmupStatus,omitempty"`
	Attempts              []attempt     `json:"attempts"`
}

type throttleOutput struct {
	Path    string `json:"path"`
	Clients int    `json:"clients"`
	// MaxRetries is what the request was given; -1: client-go's default (10).
	MaxRetries int `json:"maxRetries"`
	// BarrierMs: when the clients were released (ms since the tool started); EndMs: when the last
	// one finished.
	BarrierMs float64        `json:"barrierMs"`
	EndMs     float64        `json:"endMs"`
	Results   []clientResult `json:"results"`
}

type clientKey struct{}

// attemptRecorder is the rest.Config.WrapTransport round tripper: it records every attempt of
// every client (the client's id travels in the request's context).
type attemptRecorder struct {
	next  http.RoundTripper
	start time.Time
	mu    sync.Mutex
	byID  map[int][]attempt
}

func (a *attemptRecorder) since() float64 {
	return float64(time.Since(a.start).Microseconds()) / 1000
}

func (a *attemptRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	id, ok := req.Context().Value(clientKey{}).(int)
	if !ok {
		return a.next.RoundTrip(req)
	}
	at := attempt{StartMs: a.since()}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { at.Reused = info.Reused },
	}))
	res, err := a.next.RoundTrip(req)
	at.EndMs = a.since()
	if err != nil {
		at.Error = err.Error()
	} else {
		at.Status = res.StatusCode
		at.RetryAfter = res.Header.Get("Retry-After")
	}
	a.mu.Lock()
	at.N = len(a.byID[id]) + 1
	a.byID[id] = append(a.byID[id], at)
	a.mu.Unlock()
	return res, err
}

// runThrottle sends one GET per client through client-go's REST client, all clients released at
// once, and prints (JSON, stdout) every client's outcome and every attempt client-go made for it:
// how client-go's own Retry-After handling (rest/with_retry.go) behaves against a server that
// throttles.
//
//	throttle --kubeconfig K [--server URL] --path P [--clients N] [--max-retries N] [--qps Q --burst B]
//	         [--start-together=true] [--warmup-path P2] [--user-agent UA] [--timeout 120s]
func runThrottle(args []string) int {
	start := time.Now()
	fs := flag.NewFlagSet("throttle", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file")
	server := fs.String("server", "", "server URL (overrides the kubeconfig's)")
	path := fs.String("path", "", "path to GET, e.g. /api/v1/namespaces/default/configmaps")
	clients := fs.Int("clients", 1, "concurrent clients, one request each")
	maxRetries := fs.Int("max-retries", -1, "client-go Request.MaxRetries (-1: client-go's default, 10)")
	qps := fs.Float64("qps", 1e6, "client-side rate limiter QPS (shared by all clients)")
	burst := fs.Int("burst", 1e6, "client-side rate limiter burst")
	together := fs.Bool("start-together", true, "release all clients at one barrier (after their warm-up)")
	warmup := fs.String("warmup-path", "", "each client first GETs this path (no retries, not recorded) so that its connection is open before the barrier")
	userAgent := fs.String("user-agent", "", "User-Agent (default: client-go's)")
	timeout := fs.Duration("timeout", 120*time.Second, "overall deadline")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *path == "" || *clients < 1 {
		fmt.Fprintln(os.Stderr, "throttle: --kubeconfig, --path and --clients >= 1 are required")
		return 2
	}
	cfg, err := restConfig(*kubeconfig, *server)
	if err != nil {
		fmt.Fprintf(os.Stderr, "throttle: %v\n", err)
		return 1
	}
	cfg.QPS = float32(*qps)
	cfg.Burst = *burst
	cfg.Timeout = 0
	if *userAgent != "" {
		cfg.UserAgent = *userAgent
	}
	recorder := &attemptRecorder{start: start, byID: map[int][]attempt{}}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		// One HTTP/1.1 connection per concurrent request: keep them all open between the warm-up
		// and the barrier instead of client-go's default of 25 idle connections per host.
		if t, ok := rt.(*http.Transport); ok {
			t.MaxIdleConnsPerHost = *clients + 10
			t.MaxIdleConns = *clients + 10
		}
		recorder.next = rt
		return recorder
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "throttle: %v\n", err)
		return 1
	}
	rc := cs.CoreV1().RESTClient()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	results := make([]clientResult, *clients)
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	ready.Add(*clients)
	done.Add(*clients)
	for i := 0; i < *clients; i++ {
		go func(id int) {
			defer done.Done()
			r := clientResult{Client: id}
			if *warmup != "" {
				w := rc.Get().AbsPath(*warmup).MaxRetries(0).Do(ctx)
				w.StatusCode(&r.WarmupStatus)
			}
			ready.Done()
			if *together {
				<-release
			}
			req := rc.Get().AbsPath(*path)
			if *maxRetries >= 0 {
				req = req.MaxRetries(*maxRetries)
			}
			res := req.Do(context.WithValue(ctx, clientKey{}, id))
			res.StatusCode(&r.Code)
			if err := res.Error(); err != nil {
				r.Error = err.Error()
				r.IsTooManyRequests = apierrors.IsTooManyRequests(err)
				r.SuggestsClientDelay, r.SuggestsClientDelayOK = apierrors.SuggestsClientDelay(err)
				var s apierrors.APIStatus
				if stderrors.As(err, &s) {
					st := s.Status()
					f := &statusFields{Status: st.Status, Reason: string(st.Reason), Code: st.Code, Message: st.Message}
					if st.Details != nil {
						v := st.Details.RetryAfterSeconds
						f.RetryAfterSeconds = &v
					}
					r.Status = f
				}
			} else {
				r.OK = true
			}
			results[id] = r
		}(i)
	}
	ready.Wait()
	out := throttleOutput{Path: *path, Clients: *clients, MaxRetries: *maxRetries, BarrierMs: recorder.since()}
	close(release)
	done.Wait()
	out.EndMs = recorder.since()
	for i := range results {
		results[i].Attempts = recorder.byID[i]
		if results[i].Attempts == nil {
			results[i].Attempts = []attempt{}
		}
	}
	out.Results = results
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "throttle: %v\n", err)
		return 1
	}
	return 0
}
