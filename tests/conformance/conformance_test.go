// SPDX-License-Identifier: Apache-2.0
// containerd's snapshotter conformance suite (snapshots/testsuite, from
// Debian's golang-github-containerd-containerd-dev sources) run against
// `lazypull snapshotter` through containerd's snapshots proxy client: the
// same gRPC path containerd takes to a proxy plugin. Every test of the suite
// gets its own root directory; the constructor below starts one lazypull
// daemon on that root (socket beside it), dials it, and its cleanup stops
// the daemon with SIGTERM and checks it exited 0, quickly, leaving nothing
// mounted under the root. The daemon's stderr goes to the test's log (shown
// for failed tests, or all with -test.v).
//
// Built by tests/conformance/build.sh; run by
// tests/integration/test_conformance.sh:
//
//	LAZYPULL=/path/to/lazypull conformance.test [-test.v] [-test.run REGEX]
package conformance

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

// How long a daemon may take to serve after its start, and to exit after
// SIGTERM, before the test fails.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// timings of every daemon's start (exec to a served connection) and stop
// (SIGTERM to exit), reported at the end of the run.
var timings struct {
	sync.Mutex
	n                 int
	startMax, stopMax time.Duration
	startSum, stopSum time.Duration
}

func record(start, stop time.Duration) {
	timings.Lock()
	defer timings.Unlock()
	timings.n++
	timings.startSum += start
	timings.stopSum += stop
	if start > timings.startMax {
		timings.startMax = start
	}
	if stop > timings.stopMax {
		timings.stopMax = stop
	}
}

// daemon is one `lazypull snapshotter` serving one test's root.
type daemon struct {
	cmd    *exec.Cmd
	root   string
	conn   *grpc.ClientConn
	logged chan struct{} // closed when its stderr reached EOF
	exited chan error    // receives cmd.Wait's result once

	started   time.Time
	startTook time.Duration
}

// startDaemon runs `lazypull snapshotter --root ROOT --address SOCK` (SOCK
// beside ROOT, in the suite's per-test directory) and waits until its
// socket takes a gRPC connection.
func startDaemon(ctx context.Context, bin, root string) (*daemon, error) {
	sock := filepath.Join(filepath.Dir(root), "lazypull.sock")
	cmd := exec.Command(bin, "snapshotter", "--root", root, "--address", sock)
	cmd.Stdout = nil
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &daemon{cmd: cmd, root: root, logged: make(chan struct{}),
		exited: make(chan error, 1), started: time.Now()}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			log.G(ctx).Info("lazypull: " + sc.Text())
		}
		close(d.logged)
	}()
	go func() {
		<-d.logged
		d.exited <- cmd.Wait()
	}()

	dctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-d.exited:
			return nil, fmt.Errorf("lazypull snapshotter exited before serving: %v", err)
		case <-dctx.Done():
			d.kill()
			return nil, fmt.Errorf("lazypull snapshotter: no socket after %v", startTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
	conn, err := grpc.DialContext(dctx, sock, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		d.kill()
		return nil, fmt.Errorf("dial %s: %w", sock, err)
	}
	d.conn = conn
	d.startTook = time.Since(d.started)
	return d, nil
}

// kill ends a daemon that failed to start (best effort, never blocks long).
func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	select {
	case <-d.exited:
	case <-time.After(stopTimeout):
	}
}

// stop closes the connection, sends SIGTERM and checks the daemon exits 0
// within stopTimeout and leaves no mount under its root.
func (d *daemon) stop() error {
	var errs []string
	if err := d.conn.Close(); err != nil {
		errs = append(errs, "close: "+err.Error())
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		errs = append(errs, "SIGTERM: "+err.Error())
	}
	start := time.Now()
	select {
	case err := <-d.exited:
		if err != nil {
			errs = append(errs, fmt.Sprintf("lazypull snapshotter exited: %v", err))
		}
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		errs = append(errs, fmt.Sprintf("lazypull snapshotter still running %v after SIGTERM", stopTimeout))
	}
	took := time.Since(start)
	record(d.startTook, took)
	left, err := mountsUnder(d.root)
	if err != nil {
		errs = append(errs, err.Error())
	} else if len(left) > 0 {
		errs = append(errs, fmt.Sprintf("still mounted after exit: %v", left))
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop (%v): %s", took, strings.Join(errs, "; "))
	}
	return nil
}

// mountsUnder lists the mount points at or below dir (from
// /proc/self/mountinfo; octal escapes are left as they are).
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out, nil
}

func TestLazypullConformance(t *testing.T) {
	bin := os.Getenv("LAZYPULL")
	if bin == "" {
		t.Fatal("LAZYPULL (the lazypull binary) is not set")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
	testsuite.SnapshotterSuite(t, "lazypull",
		func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
			d, err := startDaemon(ctx, bin, root)
			if err != nil {
				return nil, nil, err
			}
			sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(d.conn), "lazypull")
			cleanup := func() error {
				err := d.stop()
				if cerr := sn.Close(); cerr != nil && err == nil {
					err = cerr
				}
				return err
			}
			return sn, cleanup, nil
		})
	t.Cleanup(func() {
		timings.Lock()
		defer timings.Unlock()
		if timings.n > 0 {
			t.Logf("daemons: %d; start mean %v max %v; stop mean %v max %v",
				timings.n,
				(timings.startSum / time.Duration(timings.n)).Round(time.Millisecond),
				timings.startMax.Round(time.Millisecond),
				(timings.stopSum / time.Duration(timings.n)).Round(time.Millisecond),
				timings.stopMax.Round(time.Millisecond))
		}
	})
}
