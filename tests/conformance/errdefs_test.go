// SPDX-License-Identifier: Apache-2.0
// What containerd's snapshotter suite leaves out but containerd relies on,
// checked the same way (one lazypull daemon, containerd's proxy client):
// the error kinds (errdefs, from the gRPC codes) of containerd's own
// metastore (snapshots/storage) for each misuse, labels with empty values,
// Usage of an active and a committed snapshot, bad Walk filters and Cleanup.
package conformance

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
)

func TestLazypullErrdefs(t *testing.T) {
	bin := os.Getenv("LAZYPULL")
	if bin == "" {
		t.Fatal("LAZYPULL (the lazypull binary) is not set")
	}
	ctx := namespaces.WithNamespace(context.Background(), "errdefs")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0700); err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(ctx, bin, root)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
	}()
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(d.conn), "lazypull")

	// kind checks err against errdefs' predicate is (what containerd's
	// metastore returns for the same call).
	kind := func(what string, err error, is func(error) bool, want string) {
		t.Helper()
		if err == nil || !is(err) {
			t.Errorf("%s: got %v, want %s", what, err, want)
		}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	_, err = sn.Prepare(ctx, "base-a", "")
	must("Prepare base-a", err)
	must("Commit base", sn.Commit(ctx, "base", "base-a"))
	_, err = sn.Prepare(ctx, "a", "base")
	must("Prepare a", err)
	_, err = sn.View(ctx, "v", "base")
	must("View v", err)

	_, err = sn.Stat(ctx, "nope")
	kind("Stat of a missing key", err, errdefs.IsNotFound, "not found")
	_, err = sn.Prepare(ctx, "a", "base")
	kind("Prepare of a taken key", err, errdefs.IsAlreadyExists, "already exists")
	_, err = sn.Prepare(ctx, "b", "nope")
	kind("Prepare on a missing parent", err, errdefs.IsNotFound, "not found")
	_, err = sn.Prepare(ctx, "b", "a")
	kind("Prepare on an active parent", err, errdefs.IsInvalidArgument, "invalid argument")
	kind("Commit of a view", sn.Commit(ctx, "c", "v"), errdefs.IsFailedPrecondition,
		"failed precondition")
	kind("Commit of a missing key", sn.Commit(ctx, "c", "nope"), errdefs.IsNotFound,
		"not found")
	kind("Commit to a taken name", sn.Commit(ctx, "base", "a"), errdefs.IsAlreadyExists,
		"already exists")
	kind("Remove of a parent with children", sn.Remove(ctx, "base"),
		errdefs.IsFailedPrecondition, "failed precondition")
	kind("Remove of a missing key", sn.Remove(ctx, "nope"), errdefs.IsNotFound, "not found")
	_, err = sn.Mounts(ctx, "base")
	kind("Mounts of a committed snapshot", err, errdefs.IsFailedPrecondition,
		"failed precondition")
	_, err = sn.Update(ctx, snapshots.Info{Name: "nope"})
	kind("Update of a missing key", err, errdefs.IsNotFound, "not found")
	_, err = sn.Update(ctx, snapshots.Info{Name: "a", Kind: snapshots.KindCommitted}, "kind")
	kind("Update of kind", err, errdefs.IsInvalidArgument, "invalid argument")
	err = sn.Walk(ctx, func(context.Context, snapshots.Info) error { return nil }, "name==\"open")
	kind("Walk with a bad filter", err, errdefs.IsInvalidArgument, "invalid argument")
	// the failed Commit to "base" left "a" active and "base" as it was
	if si, err := sn.Stat(ctx, "a"); err != nil || si.Kind != snapshots.KindActive {
		t.Errorf("a after a failed Commit: %+v, %v", si, err)
	}

	// a label with an empty value is not stored (boltutil.WriteLabels)
	_, err = sn.View(ctx, "lab", "base", snapshots.WithLabels(map[string]string{
		"k": "v", "e": ""}))
	must("View lab", err)
	if si, err := sn.Stat(ctx, "lab"); err != nil || len(si.Labels) != 1 ||
		si.Labels["k"] != "v" {
		t.Errorf("labels of lab: %v, %v (want only k=v)", si.Labels, err)
	}
	must("Remove lab", sn.Remove(ctx, "lab"))

	// Usage: an active snapshot's upper directory as it is now, a
	// committed one's as it was at Commit.
	const size = 1 << 20
	ms, err := sn.Mounts(ctx, "a")
	must("Mounts a", err)
	mnt := filepath.Join(dir, "mnt")
	must("mkdir", os.Mkdir(mnt, 0700))
	must("mount a", mount.All(ms, mnt))
	werr := os.WriteFile(filepath.Join(mnt, "data"), make([]byte, size), 0644)
	must("umount a", mount.UnmountAll(mnt, 0))
	must("write", werr)
	u, err := sn.Usage(ctx, "a")
	must("Usage a", err)
	if u.Size < size || u.Inodes < 1 {
		t.Errorf("Usage of active a after writing %d bytes: %+v", size, u)
	}
	must("Commit top", sn.Commit(ctx, "top", "a"))
	uc, err := sn.Usage(ctx, "top")
	must("Usage top", err)
	if uc.Size < size || uc.Inodes != u.Inodes {
		t.Errorf("Usage of committed top: %+v, active had %+v", uc, u)
	}
	_, err = sn.Usage(ctx, "nope")
	kind("Usage of a missing key", err, errdefs.IsNotFound, "not found")

	// Remove in order, then Cleanup of an empty snapshotter
	must("Remove v", sn.Remove(ctx, "v"))
	must("Remove top", sn.Remove(ctx, "top"))
	must("Remove base", sn.Remove(ctx, "base"))
	cl, ok := sn.(snapshots.Cleaner)
	if !ok {
		t.Fatal("the proxy snapshotter is no snapshots.Cleaner")
	}
	must("Cleanup", cl.Cleanup(ctx))
	n := 0
	must("Walk", sn.Walk(ctx, func(context.Context, snapshots.Info) error { n++; return nil }))
	if n != 0 {
		t.Errorf("%d snapshots left after removing all", n)
	}
	left, err := os.ReadDir(filepath.Join(root, "snapshots"))
	must("ReadDir", err)
	if len(left) != 0 {
		t.Errorf("snapshot directories left after removing all: %d", len(left))
	}
}
