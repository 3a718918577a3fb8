package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/scimd/scimd/scim"
)

// setPasswordLinks provisions email through the partner family n times (the first
// creates the user, the others re-provision it), delivering each message, and
// returns the links in the order they were sent.
func setPasswordLinks(t *testing.T, e *env, me *mailEnv, sk *sink, email string, n int) []string {
	t.Helper()
	for i := range n {
		want := http.StatusCreated
		if i > 0 {
			want = http.StatusOK // "existing": a fresh message
		}
		partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"email": email, "result_url": "https://partner.example/"}).want(t, want)
		if got := me.step(t); got != 1 {
			t.Fatalf("delivery %d claimed %d messages, want 1", i, got)
		}
	}
	var links []string
	for _, r := range sk.messages() {
		links = append(links, linkOf(t, r))
	}
	if len(links) != n {
		t.Fatalf("received %d messages, want %d", len(links), n)
	}
	return links
}

// setPassword opens link in a fresh browser and posts pw through its form.
func setPassword(t *testing.T, e *env, link, pw string) page {
	t.Helper()
	b := newBrowser(t)
	form := b.get(link).want(t, http.StatusOK, "Set your password").form(t)
	form.Set("password", pw)
	form.Set("confirm", pw)
	return b.post(e.srv.URL+scim.SetPasswordPath, form)
}

// TestSetPasswordLinkReplaced: re-provisioning a user sends a new link and the old
// one stops working at once (410, saying it was replaced), on GET and on POST of a
// form opened before; the new link works.
func TestSetPasswordLinkReplaced(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"email": "ann@example.com", "result_url": "https://partner.example/"}).want(t, http.StatusCreated)
		me.step(t)
		old := linkOf(t, sk.messages()[0])
		b := newBrowser(t)
		form := b.get(old).want(t, http.StatusOK, "Set your password").form(t) // opened before the re-provision

		partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"email": "ann@example.com", "result_url": "https://partner.example/"}).want(t, http.StatusOK)
		me.step(t)
		if len(sk.messages()) != 2 {
			t.Fatalf("received %d messages, want 2", len(sk.messages()))
		}
		fresh := linkOf(t, sk.messages()[1])

		newBrowser(t).get(old).want(t, http.StatusGone, "replaced by a newer one")
		form.Set("password", "an old password")
		form.Set("confirm", "an old password")
		b.post(e.srv.URL+scim.SetPasswordPath, form).want(t, http.StatusGone, "replaced by a newer one")
		if h := userByName(t, e, "ann@example.com").PasswordHash; h != "" {
			t.Fatal("a replaced link set a password")
		}
		if p := setPassword(t, e, fresh, "the new password"); p.status != http.StatusSeeOther {
			t.Fatalf("the new link: status %d; body %s", p.status, p.body)
		}
		if h := userByName(t, e, "ann@example.com").PasswordHash; h == "" {
			t.Fatal("the new link set no password")
		}
		newBrowser(t).get(old).want(t, http.StatusGone, "")
	})
}

// TestSetPasswordLinkUseRevokesOthers: when two links of a user are usable at once
// (two deliveries on two replicas issued them at the same moment), setting the
// password through one revokes the other.
func TestSetPasswordLinkUseRevokesOthers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		links := setPasswordLinks(t, e, me, sk, "bo@example.com", 2)
		// What two racing issues leave behind: neither saw the other.
		if err := e.st.DB().Exec(`UPDATE account_links SET revoked_at = NULL`).Error; err != nil {
			t.Fatal(err)
		}
		newBrowser(t).get(links[0]).want(t, http.StatusOK, "Set your password")
		if p := setPassword(t, e, links[1], "a fine password"); p.status != http.StatusSeeOther {
			t.Fatalf("status %d; body %s", p.status, p.body)
		}
		newBrowser(t).get(links[0]).want(t, http.StatusGone, "replaced by a newer one")
	})
}

// TestSetPasswordLinkOfDeletedUser: once the user is deleted, the link answers 410
// on GET (not the form) and on POST of a form opened before.
func TestSetPasswordLinkOfDeletedUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		link := setPasswordLinks(t, e, me, sk, "cy@example.com", 1)[0]
		b := newBrowser(t)
		form := b.get(link).want(t, http.StatusOK, "Set your password").form(t)
		id := userByName(t, e, "cy@example.com").ID
		e.call("DELETE", "/scim/v2/Users/"+id, nil).want(t, http.StatusNoContent)

		newBrowser(t).get(link).want(t, http.StatusGone, "not valid any more")
		b.post(e.srv.URL+scim.SetPasswordPath, url.Values{"token": form["token"], "csrf": form["csrf"],
			"password": {"a fine password"}, "confirm": {"a fine password"}}).want(t, http.StatusGone, "not valid any more")
	})
}
