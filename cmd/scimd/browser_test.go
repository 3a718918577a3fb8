package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// chromiumPath is where Debian's chromium package puts the browser; .ci/run installs
// it when it is absent.
const chromiumPath = "/usr/bin/chromium"

// TestBrowserSetPassword drives a real headless Chromium through the emailed
// set-password link: a too-short password shows the error next to the field, a good
// one lands on the partner's result_url, and the link is dead afterwards.
func TestBrowserSetPassword(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is missing: .ci/run installs the chromium package", chromiumPath)
		}
		t.Skipf("%s not found: install Debian's chromium package to run the browser test", chromiumPath)
	}
	b := storetest.Backend{Name: "sqlite", Open: storetest.OpenSQLite}
	e := newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10})
	sk := startSink(t, "")
	me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})

	landing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!DOCTYPE html><html><body><h1 id="landed">Welcome to the partner</h1></body></html>`)
	}))
	t.Cleanup(landing.Close)
	resultURL := landing.URL + "/welcome"
	provisionPartner(t, e, "browser@example.com", resultURL)
	if n := me.step(t); n != 1 {
		t.Fatalf("delivered %d messages, want 1", n)
	}
	link := linkOf(t, sk.messages()[0])

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser, %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		step("read "+sel, err)
		return v
	}
	step("open the link", chromedp.Do(ctx,
		chromedp.Navigate(link),
		chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#password"), "short"),
		chromedp.SendKeys(css("#confirm"), "short"),
		chromedp.Click(css("button[type=submit]")),
		chromedp.WaitVisible(css("#password-error")),
	))
	errText := text("#password-error")
	step("submit a good password", chromedp.Do(ctx,
		chromedp.SendKeys(css("#password"), "correct horse battery"),
		chromedp.SendKeys(css("#confirm"), "correct horse battery"),
		chromedp.Click(css("button[type=submit]")),
		chromedp.WaitVisible(css("#landed")),
	))
	landed := text("#landed")
	location, err := chromedp.Run(ctx, chromedp.Location())
	step("read the location", err)
	step("open the link again", chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(css("main"))))
	after := text("main")
	if !strings.Contains(errText, "at least 8 characters") {
		t.Errorf("error next to the field: %q", errText)
	}
	if location != resultURL || landed != "Welcome to the partner" {
		t.Errorf("landed on %q (%q), want %s", location, landed, resultURL)
	}
	if !strings.Contains(after, "not valid") {
		t.Errorf("a used link still works: %q", after)
	}
	if h := userByName(t, e, "browser@example.com").PasswordHash; !strings.HasPrefix(h, "$2") {
		t.Errorf("no password stored (%q)", h)
	}
}
