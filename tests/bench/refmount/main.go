// SPDX-License-Identifier: Apache-2.0
// refmount: mount eStargz layers from a plain-HTTP registry with the
// reference implementation's fs package (containerd/stargz-snapshotter,
// Debian's packaged sources), one process for all of them, as its
// snapshotter does. A benchmark helper for tests/bench/fs-bench.sh only.
//
// usage: refmount ROOT REF [MOUNTPOINT LAYER-DIGEST TOC-DIGEST]...
// Prints "ready" when every layer is mounted; unmounts on SIGTERM/SIGINT.
package main

import (
	"context"
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
	if len(os.Args) < 6 || (len(os.Args)-3)%3 != 0 {
		fmt.Fprintln(os.Stderr, "usage: refmount ROOT REF [MNT DIGEST TOC]...")
		os.Exit(2)
	}
	root, ref := os.Args[1], os.Args[2]
	hosts := func(spec reference.Spec) ([]docker.RegistryHost, error) {
		return []docker.RegistryHost{{
			Client:       &http.Client{Transport: http.DefaultTransport},
			Host:         spec.Hostname(),
			Scheme:       "http",
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
		}}, nil
	}
	f, err := fs.NewFilesystem(root, config.Config{},
		fs.WithGetSources(source.FromDefaultLabels(hosts)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "NewFilesystem:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	var mnts []string
	for i := 3; i+2 < len(os.Args); i += 3 {
		labels := map[string]string{
			"containerd.io/snapshot/remote/stargz.reference": ref,
			"containerd.io/snapshot/remote/stargz.digest":    os.Args[i+1],
			"containerd.io/snapshot/stargz/toc.digest":       os.Args[i+2],
		}
		if err := f.Mount(ctx, os.Args[i], labels); err != nil {
			fmt.Fprintln(os.Stderr, "Mount:", err)
			os.Exit(1)
		}
		mnts = append(mnts, os.Args[i])
	}
	fmt.Println("ready")
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	for _, m := range mnts {
		f.Unmount(ctx, m)
	}
}
