// Package logging builds the agent's hclog logger from its config. Every
// part of the agent logs through it, plugins included: go-plugin re-emits
// each plugin's stderr lines through a sub-logger named after the plugin,
// so one sink, one format and one level cover the whole process tree.
package logging

import (
	"io"

	"github.com/hashicorp/go-hclog"

	"gitea.dooplex.hu/admin/felhom-agent/core/config"
)

// New returns the root logger for cfg, writing to w.
func New(cfg config.Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "felhom-agent",
		Level:           hclog.LevelFromString(cfg.Level),
		Output:          w,
		JSONFormat:      cfg.Format == "json",
		IncludeLocation: false,
		TimeFormat:      "2006-01-02T15:04:05.000Z0700",
		// Plugin loggers share our sink; keep their level in step with ours.
		IndependentLevels: false,
	})
}
