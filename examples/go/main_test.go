package main

// The example's functions, with the official openai-go client, against `polyroute serve` in
// front of the loopback mock server. server/test.sh starts both with its test policy (routes
// main, streaming, cutting, busy) and sets POLYROUTE_TEST_URL to the gateway's base URL;
// without it these tests are skipped.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

func gateway(t *testing.T) (openai.Client, context.Context) {
	t.Helper()
	url := os.Getenv("POLYROUTE_TEST_URL")
	if url == "" {
		t.Skip("POLYROUTE_TEST_URL is not set (server/test.sh starts a gateway and sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return NewClient(url), ctx
}

// The primary deployment's 503 is invisible; the header names the one that served.
func TestFailoverIsInvisible(t *testing.T) {
	client, ctx := gateway(t)
	answer, deployment, err := Ask(ctx, client, "main", "hello mock")
	if err != nil {
		t.Fatal(err)
	}
	if answer != "echo: hello mock" || deployment != "b" {
		t.Fatalf("answer %q from deployment %q, want \"echo: hello mock\" from b", answer, deployment)
	}
}

// A cut before any content on the first deployment is invisible; usage comes at the end.
func TestStreamWithUsage(t *testing.T) {
	client, ctx := gateway(t)
	var text bytes.Buffer
	tokens, err := AskStream(ctx, client, "streaming", "hello mock", &text)
	if err != nil {
		t.Fatal(err)
	}
	if text.String() != "echo: hello mock" || tokens != 3 {
		t.Fatalf("streamed %q with %d completion tokens, want \"echo: hello mock\" with 3", text.String(), tokens)
	}
}

// A cut after content is the stream's error, never a truncated success.
func TestStreamCutAfterContentIsAnError(t *testing.T) {
	client, ctx := gateway(t)
	var text bytes.Buffer
	_, err := AskStream(ctx, client, "cutting", "x", &text)
	if err == nil {
		t.Fatalf("a stream cut after content ended as a success: %q", text.String())
	}
	var streamErr *ssestream.StreamError
	if !errors.As(err, &streamErr) || !strings.Contains(strings.ToLower(err.Error()), "stream") {
		t.Fatalf("want the stream's error event, got %T: %v", err, err)
	}
	if text.Len() == 0 {
		t.Fatal("the cut was meant to come after some content")
	}
}

// Errors are *openai.Error with the HTTP status, Polyroute's kind as Code, and Retry-After.
func TestRateLimitedIsAnOpenAIError(t *testing.T) {
	client, ctx := gateway(t)
	_, _, err := Ask(ctx, client, "busy", "x")
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want *openai.Error, got %T: %v", err, err)
	}
	if apiErr.StatusCode != 429 || apiErr.Code != "rate_limited" {
		t.Fatalf("got %d %q, want 429 rate_limited", apiErr.StatusCode, apiErr.Code)
	}
	if got := apiErr.Response.Header.Get("Retry-After"); got != "3" {
		t.Fatalf("Retry-After %q, want 3", got)
	}
	if got := describe(err).Error(); !strings.Contains(got, "429 rate_limited") || !strings.Contains(got, "retry after 3s") {
		t.Fatalf("describe: %q", got)
	}
}

// Routing by header (x-polyroute-route) and by the body's polyroute object.
func TestRoutingByHeaderAndBody(t *testing.T) {
	client, ctx := gateway(t)
	_, _, err := Ask(ctx, client, "gpt-4o", "x", option.WithHeader("x-polyroute-route", "nowhere"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "no_route" {
		t.Fatalf("x-polyroute-route: nowhere: want 404 no_route, got %v", err)
	}
	_, _, err = Ask(ctx, client, "gpt-4o", "x", option.WithJSONSet("polyroute", map[string]string{"route": "busy"}))
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Fatalf("body polyroute.route busy: want 429, got %v", err)
	}
}

// The example's main path: one call and one streamed call.
func TestRun(t *testing.T) {
	_, ctx := gateway(t)
	var out bytes.Buffer
	if err := run(ctx, &out, os.Getenv("POLYROUTE_TEST_URL"), "main"); err != nil {
		t.Fatal(err)
	}
	want := "answer: echo: What is the capital of France?\nserved by: b\nstreamed: echo: And of Italy?\ncompletion tokens: "
	if !strings.HasPrefix(out.String(), want) {
		t.Fatalf("output:\n%s\nwant it to start with:\n%s", out.String(), want)
	}
}
