package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// storeItem is one object of the informer's store as written to --out.
type storeItem struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	ResourceVersion string            `json:"resourceVersion"`
	Labels          map[string]string `json:"labels"`
}

// requestLog writes one line per request the informer sends (method, URL, status) to stderr, so a
// test can see whether it listed or watch-listed, and where.
type requestLog struct {
	next http.RoundTripper
	mu   sync.Mutex
}

func (l *requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := l.next.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		fmt.Fprintf(os.Stderr, "request %s %s error %v\n", req.Method, req.URL.RequestURI(), err)
	} else {
		fmt.Fprintf(os.Stderr, "request %s %s %d\n", req.Method, req.URL.RequestURI(), res.StatusCode)
	}
	return res, err
}

// runInformer runs a client-go SharedInformer (from the typed clientset's informer factory, as
// controllers build them: watch-list by default since client-go 1.35) and writes its store as
// sorted JSON to --out every second and on SIGUSR1, until SIGTERM/SIGINT.
//
//	informer --kubeconfig K [--server URL] --resource pods|configmaps --namespace NS [--label-selector S] --out FILE
func runInformer(args []string) int {
	fs := flag.NewFlagSet("informer", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file")
	server := fs.String("server", "", "server URL (overrides the kubeconfig's)")
	resource := fs.String("resource", "pods", "pods or configmaps")
	namespace := fs.String("namespace", "", "namespace (empty: all)")
	labelSelector := fs.String("label-selector", "", "label selector")
	out := fs.String("out", "", "file to write the store to")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "informer: --kubeconfig and --out are required")
		return 2
	}
	cfg, err := restConfig(*kubeconfig, *server)
	if err != nil {
		fmt.Fprintf(os.Stderr, "informer: %v\n", err)
		return 1
	}
	cfg.QPS = -1
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &requestLog{next: rt} }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "informer: %v\n", err)
		return 1
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(*namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = *labelSelector }))
	var informer cache.SharedIndexInformer
	switch *resource {
	case "pods":
		informer = factory.Core().V1().Pods().Informer()
	case "configmaps":
		informer = factory.Core().V1().ConfigMaps().Informer()
	default:
		fmt.Fprintf(os.Stderr, "informer: unsupported resource %q\n", *resource)
		return 2
	}
	var events struct {
		sync.Mutex
		added, updated, deleted int
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { events.Lock(); events.added++; events.Unlock() },
		UpdateFunc: func(any, any) { events.Lock(); events.updated++; events.Unlock() },
		DeleteFunc: func(any) { events.Lock(); events.deleted++; events.Unlock() },
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		fmt.Fprintln(os.Stderr, "informer: cache did not sync")
		return 1
	}
	fmt.Fprintln(os.Stderr, "synced")

	write := func() error {
		items := []storeItem{}
		for _, o := range informer.GetStore().List() {
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
		// Written whole, then renamed: a reader never sees half a file.
		tmp := filepath.Join(filepath.Dir(*out), "."+filepath.Base(*out)+".tmp")
		if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, *out)
	}
	if err := write(); err != nil {
		fmt.Fprintf(os.Stderr, "informer: %v\n", err)
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
				events.Lock()
				fmt.Fprintf(os.Stderr, "events added=%d updated=%d deleted=%d\n", events.added, events.updated, events.deleted)
				events.Unlock()
				cancel()
				factory.Shutdown()
				return 0
			}
		case <-ticker.C:
		}
		if err := write(); err != nil {
			fmt.Fprintf(os.Stderr, "informer: %v\n", err)
			return 1
		}
	}
}
