package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a scimd process scimbench started.
type server struct {
	cmd  *exec.Cmd
	done chan error
	base string
}

// startServer runs bin serve on a free 127.0.0.1 port over dsn, bootstrapped with
// token, its log in logPath, and waits until it is ready.
func startServer(ctx context.Context, bin, dsn, token, logPath string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--database", dsn, "--addr", addr, "--log-format", "json")
	cmd.Env = append(os.Environ(), "SCIMD_BOOTSTRAP_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = logf, logf
	s, err := startProcess(cmd, logf.Close)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.base = "http://" + addr + "/scim/v2"
	if err := s.waitReady(ctx, "http://"+addr+"/readyz", time.Minute); err != nil {
		return nil, fmt.Errorf("scimd: %w; see %s", err, logPath)
	}
	return s, nil
}

// freeAddr returns a 127.0.0.1 address with a port free at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startProcess starts cmd as a server; closeLog, when not nil, runs once it has
// exited.
func startProcess(cmd *exec.Cmd, closeLog func() error) (*server, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	go func() {
		s.done <- cmd.Wait()
		if closeLog != nil {
			_ = closeLog()
		}
	}()
	return s, nil
}

// waitReady polls ready until it answers 200, and stops the server when it does
// not within the bound, when it exits first, or when ctx ends.
func (s *server) waitReady(ctx context.Context, ready string, within time.Duration) error {
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("exited before it was ready (%v)", err)
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := hc.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("not ready within %s", within)
		}
	}
}

// rss returns the server's resident set size in bytes (Linux), or 0.
func (s *server) rss() int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// stop asks the server to shut down gracefully and kills it if it has not stopped
// within 40 seconds.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(40 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// createDatabase creates a fresh PostgreSQL database through the server adminURL
// names and returns its DSN and a function that drops it.
func createDatabase(ctx context.Context, adminURL, name string) (string, func() error, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("-postgres-admin %q: want postgres://USER@HOST:PORT/DB", adminURL)
	}
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop := func() error {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
		return err
	}
	return u.String(), drop, nil
}

var errUsage = errors.New("usage")
