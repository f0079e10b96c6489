package main

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGreeting(t *testing.T) {
	if got := greeting(""); !strings.HasPrefix(got, "hello, world,") {
		t.Fatalf("greeting(\"\") = %q", got)
	}
}

func TestRoutes(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()
	for path, want := range map[string]string{"/?name=strata": "hello, strata,", "/health": "ok"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), want) {
			t.Errorf("GET %s = %q, want prefix %q", path, body, want)
		}
	}
}
