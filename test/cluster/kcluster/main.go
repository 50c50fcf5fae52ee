// Command kcluster runs the pieces of the real test cluster: an embedded etcd,
// one kube-apiserver per process, kubectl, and the PKI they share. The
// TypeScript orchestration in test/cluster/ starts and stops these processes.
//
// Invoked as "kubectl" (e.g. through a symlink) it is kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl") {
		os.Exit(runKubectl(os.Args[1:]))
	}
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var code int
	switch os.Args[1] {
	case "etcd":
		code = runEtcd(args)
	case "apiserver":
		code = runAPIServer(args)
	case "kubectl":
		code = runKubectl(args)
	case "pki":
		code = runPKI(args)
	case "informer":
		code = runInformer(args)
	case "informers":
		code = runInformers(args)
	case "throttle":
		code = runThrottle(args)
	default:
		usage()
	}
	os.Exit(code)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kcluster etcd|apiserver|kubectl|pki|informer|informers|throttle [flags]")
	os.Exit(2)
}
