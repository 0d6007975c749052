package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis logs through one process-wide logger (to stderr by default). Its lines repeat what
// the Fleet reports itself, so they go to the last Fleet's logger at DEBUG.
var (
	redisLogOnce sync.Once
	redisLog     atomic.Pointer[slog.Logger]
)

type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.Log(ctx, slog.LevelDebug, "fleet: go-redis: "+fmt.Sprintf(format, v...))
	}
}

func routeRedisLog(l *slog.Logger) {
	redisLog.Store(l)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}
