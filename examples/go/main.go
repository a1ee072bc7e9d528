// A Go service calling LLMs through `polyroute serve` with the official openai-go client:
// point the client's base URL at the gateway; failover, retries and budgets happen behind it.
//
//	cargo run -p polyroute-server -- serve examples/policies/demo.yaml --listen 127.0.0.1:4000
//	cd examples/go && go run .
//
// POLYROUTE_URL is the gateway's base URL (default http://127.0.0.1:4000/v1); POLYROUTE_MODEL
// names a route of the policy (default chat, the demo policy's route).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// NewClient is the official client pointed at the gateway. The gateway holds the provider
// keys (the API key here is not checked) and does the retrying and failover, so the client
// must not retry on top of it.
func NewClient(baseURL string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(baseURL),
		option.WithAPIKey("unused-by-the-gateway"),
		option.WithMaxRetries(0),
	)
}

// Ask makes one call and returns the answer and the deployment that served it (Polyroute's
// x-polyroute-deployment response header).
func Ask(ctx context.Context, client openai.Client, model, prompt string, opts ...option.RequestOption) (answer, deployment string, err error) {
	var resp *http.Response
	opts = append(opts, option.WithResponseInto(&resp))
	completion, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}, opts...)
	if err != nil {
		return "", "", err
	}
	if len(completion.Choices) == 0 {
		return "", "", errors.New("an answer without choices")
	}
	return completion.Choices[0].Message.Content, resp.Header.Get("x-polyroute-deployment"), nil
}

// AskStream streams one answer into w and returns the usage chunk's completion tokens. A
// failure after the first content (the gateway cannot take back what it sent) is the
// stream's error: the caller never mistakes a cut answer for a whole one.
func AskStream(ctx context.Context, client openai.Client, model, prompt string, w io.Writer) (completionTokens int64, err error) {
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         model,
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	defer stream.Close()
	for stream.Next() {
		chunk := stream.Current()
		if len(chunk.Choices) > 0 {
			if _, err := io.WriteString(w, chunk.Choices[0].Delta.Content); err != nil {
				return 0, err
			}
		}
		if chunk.Usage.CompletionTokens > 0 {
			completionTokens = chunk.Usage.CompletionTokens
		}
	}
	return completionTokens, stream.Err()
}

func run(ctx context.Context, out io.Writer, baseURL, model string) error {
	client := NewClient(baseURL)
	answer, deployment, err := Ask(ctx, client, model, "What is the capital of France?")
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(out, "answer: %s\nserved by: %s\n", answer, deployment)

	fmt.Fprint(out, "streamed: ")
	tokens, err := AskStream(ctx, client, model, "And of Italy?", out)
	fmt.Fprintln(out)
	if err != nil {
		return describe(err)
	}
	fmt.Fprintf(out, "completion tokens: %d\n", tokens)
	return nil
}

// describe adds Polyroute's error kind (the OpenAI error's code) and, for 429 and 503, how
// long to wait.
func describe(err error) error {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return err
	}
	msg := fmt.Sprintf("%d %s: %s", apiErr.StatusCode, apiErr.Code, apiErr.Message)
	if wait := apiErr.Response.Header.Get("Retry-After"); wait != "" {
		msg += " (retry after " + wait + "s)"
	}
	return errors.New(msg)
}

func main() {
	baseURL := env("POLYROUTE_URL", "http://127.0.0.1:4000/v1")
	model := env("POLYROUTE_MODEL", "chat")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, baseURL, model); err != nil {
		fmt.Fprintln(os.Stderr, "polyroute example:", err)
		os.Exit(1)
	}
}

func env(name, fallback string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return fallback
}
