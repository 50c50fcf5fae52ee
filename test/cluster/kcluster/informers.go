package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// connLog writes one line per request with the protocol of its response and the local address of
// the connection that carried it ("request GET /api/... 200 HTTP/2.0 127.0.0.1:40312"), so a test
// can see how many connections a client-go process used and over which protocol.
type connLog struct {
	next http.RoundTripper
	mu   sync.Mutex
}

func (l *connLog) RoundTrip(req *http.Request) (*http.Response, error) {
	var local string
	var localMu sync.Mutex
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		localMu.Lock()
		local = info.Conn.LocalAddr().String()
		localMu.Unlock()
	}}
	res, err := l.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	localMu.Lock()
	conn := local
	localMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		fmt.Fprintf(os.Stderr, "request %s %s error %v\n", req.Method, req.URL.RequestURI(), err)
	} else {
		alpn := ""
		if res.TLS != nil {
			alpn = res.TLS.NegotiatedProtocol
		}
		fmt.Fprintf(os.Stderr, "request %s %s %d %s %s %s\n", req.Method, req.URL.RequestURI(), res.StatusCode, res.Proto, alpn, conn)
	}
	return res, err
}

// runInformers runs several client-go SharedInformers from one informer factory, so one clientset
// and one transport: what a controller does. Each store is written as sorted JSON to
// --out-dir/<resource>.json every second and on SIGUSR1, until SIGTERM/SIGINT.
//
//	informers --kubeconfig K [--server URL] --resources configmaps,pods,secrets --namespace NS --out-dir DIR
func runInformers(args []string) int {
	fs := flag.NewFlagSet("informers", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file")
	server := fs.String("server", "", "server URL (overrides the kubeconfig's)")
	resources := fs.String("resources", "configmaps,pods", "comma-separated: configmaps, pods, secrets, services")
	namespace := fs.String("namespace", "", "namespace (empty: all)")
	outDir := fs.String("out-dir", "", "directory to write the stores to")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *outDir == "" {
		fmt.Fprintln(os.Stderr, "informers: --kubeconfig and --out-dir are required")
		return 2
	}
	cfg, err := restConfig(*kubeconfig, *server)
	if err != nil {
		fmt.Fprintf(os.Stderr, "informers: %v\n", err)
		return 1
	}
	cfg.QPS = -1
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &connLog{next: rt} }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "informers: %v\n", err)
		return 1
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(*namespace))
	byName := map[string]cache.SharedIndexInformer{}
	for _, r := range strings.Split(*resources, ",") {
		switch r {
		case "configmaps":
			byName[r] = factory.Core().V1().ConfigMaps().Informer()
		case "pods":
			byName[r] = factory.Core().V1().Pods().Informer()
		case "secrets":
			byName[r] = factory.Core().V1().Secrets().Informer()
		case "services":
			byName[r] = factory.Core().V1().Services().Informer()
		default:
			fmt.Fprintf(os.Stderr, "informers: unsupported resource %q\n", r)
			return 2
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	for r, inf := range byName {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			fmt.Fprintf(os.Stderr, "informers: %s did not sync\n", r)
			return 1
		}
	}
	fmt.Fprintln(os.Stderr, "synced")

	write := func() error {
		for r, inf := range byName {
			items := []storeItem{}
			for _, o := range inf.GetStore().List() {
				m, ok := o.(metav1.Object)
				if !ok {
					continue
				}
				labels := m.GetLabels()
				if labels == nil {
					labels = map[string]string{}
				}
				items = append(items, storeItem{Name: m.GetName(), Namespace: m.GetNamespace(), ResourceVersion: m.GetResourceVersion(), Labels: labels})
			}
			sort.Slice(items, func(i, j int) bool {
				if items[i].Namespace != items[j].Namespace {
					return items[i].Namespace < items[j].Namespace
				}
				return items[i].Name < items[j].Name
			})
			data, err := json.Marshal(items)
			if err != nil {
				return err
			}
			out := filepath.Join(*outDir, r+".json")
			// Written whole, then renamed: a reader never sees half a file.
			tmp := filepath.Join(*outDir, "."+r+".json.tmp")
			if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(); err != nil {
		fmt.Fprintf(os.Stderr, "informers: %v\n", err)
		return 1
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case s := <-signals:
			if s != syscall.SIGUSR1 {
				cancel()
				factory.Shutdown()
				return 0
			}
		case <-ticker.C:
		}
		if err := write(); err != nil {
			fmt.Fprintf(os.Stderr, "informers: %v\n", err)
			return 1
		}
	}
}
