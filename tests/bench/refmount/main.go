// SPDX-License-Identifier: Apache-2.0
// refmount: mount eStargz layers from a plain-HTTP registry with the
// reference implementation's fs package (containerd/stargz-snapshotter,
// Debian's packaged sources), one process for all of them, as its
// snapshotter does. A benchmark helper for tests/bench/fs-bench.sh and mem-bench.sh only.
//
// usage: refmount [-no-prefetch] [-no-background-fetch] ROOT REF
//
//	[MOUNTPOINT LAYER-DIGEST TOC-DIGEST]...
//
// The flags set the config's NoPrefetch and NoBackgroundFetch (both off by
// default, the reference's defaults: fs-bench.sh); mem-bench.sh sets both so
// that the reference runs as lazypull's driver does.
// Prints "ready" when every layer is mounted; unmounts on SIGTERM/SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/stargz-snapshotter/fs"
	"github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/source"
)

func main() {
	noPrefetch := flag.Bool("no-prefetch", false, "config NoPrefetch")
	noBgFetch := flag.Bool("no-background-fetch", false, "config NoBackgroundFetch")
	flag.Parse()
	args := flag.Args()
	if len(args) < 5 || (len(args)-2)%3 != 0 {
		fmt.Fprintln(os.Stderr, "usage: refmount [-no-prefetch] [-no-background-fetch] ROOT REF [MNT DIGEST TOC]...")
		os.Exit(2)
	}
	root, ref := args[0], args[1]
	hosts := func(spec reference.Spec) ([]docker.RegistryHost, error) {
		return []docker.RegistryHost{{
			Client:       &http.Client{Transport: http.DefaultTransport},
			Host:         spec.Hostname(),
			Scheme:       "http",
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
		}}, nil
	}
	f, err := fs.NewFilesystem(root, config.Config{
		NoPrefetch:        *noPrefetch,
		NoBackgroundFetch: *noBgFetch,
	},
		fs.WithGetSources(source.FromDefaultLabels(hosts)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "NewFilesystem:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	var mnts []string
	for i := 2; i+2 < len(args); i += 3 {
		labels := map[string]string{
			"containerd.io/snapshot/remote/stargz.reference": ref,
			"containerd.io/snapshot/remote/stargz.digest":    args[i+1],
			"containerd.io/snapshot/stargz/toc.digest":       args[i+2],
		}
		if err := f.Mount(ctx, args[i], labels); err != nil {
			fmt.Fprintln(os.Stderr, "Mount:", err)
			os.Exit(1)
		}
		mnts = append(mnts, args[i])
	}
	fmt.Println("ready")
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	for _, m := range mnts {
		f.Unmount(ctx, m)
	}
}
