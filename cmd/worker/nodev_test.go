//go:build !dev

package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDevInTheProductionBuildSaysHowToGetTheDevelopmentStack(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	err := run(context.Background(), []string{"--dev", "--samples", "--metrics-addr", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard, &stderr)
	if !errors.Is(err, errNoDev) {
		t.Fatalf("run --dev: %v, want errNoDev", err)
	}
	for _, want := range []string{"built without the development stack", "make run", "-tags dev"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
