//go:build race

package spa

const raceEnabled = true
