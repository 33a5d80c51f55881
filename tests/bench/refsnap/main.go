// SPDX-License-Identifier: Apache-2.0
// refsnap: the reference implementation's remote snapshotter
// (containerd/stargz-snapshotter, Debian's packaged sources) served on a
// unix socket as a containerd proxy plugin, for side-by-side cold-start
// benchmarks (tests/bench/coldstart.sh) only. Debian packages no daemon:
// this wires fs.NewFilesystem + snapshot.NewSnapshotter +
// snapshotservice.FromSnapshotter as its service package does, without
// service/resolver (it needs a missing k8s dependency): registry hosts get a
// go-retryablehttp client as resolver.RegistryHostsFromConfig would give
// them, plain HTTP for loopback. Default fs config (prefetch and background
// fetch on, as shipped).
//
// usage: refsnap ROOT SOCKET
// Prints "serving" once it listens; stops on SIGTERM/SIGINT.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/stargz-snapshotter/fs"
	"github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/layer"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/snapshot"
	rhttp "github.com/hashicorp/go-retryablehttp"
	"google.golang.org/grpc"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: refsnap ROOT SOCKET")
		os.Exit(2)
	}
	root, sock := os.Args[1], os.Args[2]
	hosts := func(spec reference.Spec) ([]docker.RegistryHost, error) {
		client := rhttp.NewClient()
		client.Logger = nil
		tr := client.StandardClient()
		tr.Timeout = 30 * time.Second
		h := docker.RegistryHost{
			Client:       tr,
			Host:         spec.Hostname(),
			Scheme:       "https",
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
			Authorizer:   docker.NewDockerAuthorizer(docker.WithAuthClient(tr)),
		}
		if local, _ := docker.MatchLocalhost(h.Host); local {
			h.Scheme = "http"
		}
		return []docker.RegistryHost{h}, nil
	}
	ctx := context.Background()
	f, err := fs.NewFilesystem(filepath.Join(root, "stargz"), config.Config{},
		fs.WithGetSources(source.FromDefaultLabels(hosts)),
		fs.WithOverlayOpaqueType(layer.OverlayOpaqueTrusted))
	if err != nil {
		fmt.Fprintln(os.Stderr, "NewFilesystem:", err)
		os.Exit(1)
	}
	sn, err := snapshot.NewSnapshotter(ctx, filepath.Join(root, "snapshotter"), f,
		snapshot.AsynchronousRemove)
	if err != nil {
		fmt.Fprintln(os.Stderr, "NewSnapshotter:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-c
		srv.Stop()
	}()
	fmt.Println("serving")
	if err := srv.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
	}
	if err := sn.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
	}
}
