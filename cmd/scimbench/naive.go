package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"gorm.io/gorm"

	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
)

// The naive stack is the reference the performance issue names: a plain net/http +
// gorm server with no SCIM logic, serving the same five calls over the same
// database, in a process of its own, driven by the same client in the same run.
// It checks a fixed bearer token and nothing else: no schema, no validation, no
// filter language (it cuts the value out of `userName eq "…"`), no ETag, no audit
// event, no counters. Its answers are gorm's rows encoded by encoding/json. A
// create is one INSERT, PATCH active one UPDATE answered 204, and a page is
// count(*) plus ORDER BY … OFFSET … LIMIT, as such a server would write them.
// scimd figures divided by its figures say whether scimd beats the naive stack.

// naiveUser is a users row as gorm's model API reads and writes it.
type naiveUser struct {
	TenantID         string `gorm:"primaryKey"`
	ID               string `gorm:"primaryKey"`
	ExternalID       *string
	UserName         string
	UserNameLower    string
	DisplayName      *string
	DisplayNameLower *string
	Active           *bool
	Data             string
	PasswordHash     string
	Version          int64
	Created          time.Time
	LastModified     time.Time
}

func (naiveUser) TableName() string { return "users" }

// naiveList is the naive stack's list answer.
type naiveList struct {
	TotalResults int64       `json:"totalResults"`
	Resources    []naiveUser `json:"Resources"`
}

const naiveCommand = "naive-serve"

// naiveServe is `scimbench naive-serve`: it serves one tenant's users on addr until
// it is signalled. The token comes from SCIMBENCH_NAIVE_TOKEN.
func naiveServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(naiveCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	dsn := fs.String("database", "", "sqlite://PATH or postgres://…")
	tenant := fs.String("tenant", "", "the tenant id whose users are served")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token := os.Getenv("SCIMBENCH_NAIVE_TOKEN")
	if *dsn == "" || *tenant == "" || token == "" {
		return errors.New("naive-serve needs -database, -tenant and SCIMBENCH_NAIVE_TOKEN")
	}
	var st *gormstore.Store
	var err error
	if p, ok := strings.CutPrefix(*dsn, "sqlite://"); ok {
		st, err = sqlite.Open(p, zap.NewNop())
	} else {
		st, err = postgres.Open(*dsn, zap.NewNop())
	}
	if err != nil {
		return err
	}
	defer st.Close()
	srv := &http.Server{Handler: naiveHandler(st.DB(), *tenant, token), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func naiveHandler(db *gorm.DB, tenant, token string) http.Handler {
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		want := []byte("Bearer " + token)
		return func(w http.ResponseWriter, r *http.Request) {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, err error) {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /Users/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		var u naiveUser
		if err := db.WithContext(r.Context()).Where("tenant_id = ? AND id = ?", tenant, r.PathValue("id")).Take(&u).Error; err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, u)
	}))
	mux.HandleFunc("GET /Users", auth(func(w http.ResponseWriter, r *http.Request) {
		q := db.WithContext(r.Context()).Model(&naiveUser{}).Where("tenant_id = ?", tenant)
		var list naiveList
		if f := r.URL.Query().Get("filter"); f != "" {
			name, ok := strings.CutPrefix(f, `userName eq "`)
			if !ok || !strings.HasSuffix(name, `"`) {
				http.Error(w, "only userName eq is served", http.StatusBadRequest)
				return
			}
			if err := q.Where("user_name_lower = ?", strings.ToLower(strings.TrimSuffix(name, `"`))).Find(&list.Resources).Error; err != nil {
				fail(w, err)
				return
			}
			list.TotalResults = int64(len(list.Resources))
			reply(w, http.StatusOK, list)
			return
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
		count, _ := strconv.Atoi(r.URL.Query().Get("count"))
		start, count = max(start, 1), min(max(count, 1), 1000)
		if err := q.Count(&list.TotalResults).Error; err != nil {
			fail(w, err)
			return
		}
		if err := q.Order("created, id").Offset(start - 1).Limit(count).Find(&list.Resources).Error; err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, list)
	}))
	mux.HandleFunc("POST /Users", auth(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var in struct {
			UserName    string  `json:"userName"`
			ExternalID  *string `json:"externalId"`
			DisplayName *string `json:"displayName"`
			Active      *bool   `json:"active"`
		}
		if err := json.Unmarshal(raw, &in); err != nil || in.UserName == "" {
			http.Error(w, "a JSON body with userName is required", http.StatusBadRequest)
			return
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		u := naiveUser{TenantID: tenant, ID: uuid.NewString(), ExternalID: in.ExternalID, UserName: in.UserName,
			UserNameLower: strings.ToLower(in.UserName), DisplayName: in.DisplayName, Active: in.Active,
			Data: string(raw), Version: 1, Created: now, LastModified: now}
		if in.DisplayName != nil {
			l := strings.ToLower(*in.DisplayName)
			u.DisplayNameLower = &l
		}
		if err := db.WithContext(r.Context()).Create(&u).Error; err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusCreated, u)
	}))
	mux.HandleFunc("PATCH /Users/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Operations []struct {
				Path  string `json:"path"`
				Value any    `json:"value"`
			} `json:"Operations"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || len(in.Operations) != 1 || in.Operations[0].Path != "active" {
			http.Error(w, "only one replace of active is served", http.StatusBadRequest)
			return
		}
		res := db.WithContext(r.Context()).Model(&naiveUser{}).Where("tenant_id = ? AND id = ?", tenant, r.PathValue("id")).
			Updates(map[string]any{"active": in.Operations[0].Value == true, "version": gorm.Expr("version + 1"),
				"last_modified": time.Now().UTC().Truncate(time.Microsecond)})
		switch {
		case res.Error != nil:
			fail(w, res.Error)
		case res.RowsAffected != 1:
			http.Error(w, "not found", http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	return mux
}

// naive is a naive-stack server scimbench started.
type naive struct {
	srv *server
	c   *client
}

// startNaive runs this program's naive-serve over dsn for tenant on a free
// 127.0.0.1 port and waits until it answers.
func startNaive(ctx context.Context, dsn, tenant string, conns int, timeout time.Duration) (*naive, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	token := "naive_" + randomHex(16)
	cmd := exec.Command(self, naiveCommand, "-addr", addr, "-database", dsn, "-tenant", tenant)
	cmd.Env = append(os.Environ(), "SCIMBENCH_NAIVE_TOKEN="+token)
	cmd.Stderr = os.Stderr
	s, err := startProcess(cmd, nil)
	if err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, "http://"+addr+"/healthz", 30*time.Second); err != nil {
		return nil, fmt.Errorf("naive-serve: %w", err)
	}
	return &naive{srv: s, c: newClient("http://"+addr, token, conns, timeout)}, nil
}

func (n *naive) stop() { n.srv.stop() }

// runNaiveServe is main for `scimbench naive-serve`.
func runNaiveServe(args []string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := naiveServe(ctx, args, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scimbench naive-serve:", err)
		os.Exit(1)
	}
}
