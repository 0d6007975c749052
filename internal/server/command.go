package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/cmdclose"
	"github.com/sesame-spa/sesame/internal/cmdexec"
	"github.com/sesame-spa/sesame/spa"
)

// CommandRunner runs commands off the packet path; cmdexec.Pool is the real one.
type CommandRunner interface {
	// Submit queues s and returns at once; done, if not nil, gets the result on another
	// goroutine. It returns cmdexec.ErrBusy, running nothing, when the queue is full.
	Submit(s cmdexec.Spec, done func(cmdexec.Result)) error
}

// CloseStore keeps the pending CMD_CYCLE_CLOSE commands across restarts; cmdclose.Store is
// the real one.
type CloseStore interface {
	// Add records c (assigning its ID) durably before returning it.
	Add(c cmdclose.Close) (cmdclose.Close, error)
	// Done forgets the close id once it ran.
	Done(id uint64) error
	// Pending lists the closes not done, earliest first.
	Pending() []cmdclose.Close
}

// Close commands that find the queue full are retried every closeRetry, at most
// closeRetries times; after that the close stays in the store for the next start.
const (
	closeRetry   = time.Second
	closeRetries = 300
)

// defaultSudoExe is fwknopd's SUDO_EXE.
const defaultSudoExe = "/usr/bin/sudo"

// prepareCommand resolves a command stanza's CMD_EXEC_USER and CMD_EXEC_GROUP to ids (as
// fwknopd does at start: an unknown name is an error), and requires a CommandRunner unless
// testMode (which runs no command). Without CMD_EXEC_USER, or with root,
// commands run as the daemon and CMD_EXEC_GROUP is ignored, as in fwknopd; without
// CMD_EXEC_GROUP the user's primary group is used.
func (s *Server) prepareCommand(st *stanza, testMode bool) error {
	if !st.RunsCommands() {
		return nil
	}
	if s.cmds == nil && !testMode {
		return errors.New("the stanza runs commands but the server has no command runner")
	}
	c := &st.Cmd
	if c.User == "" || strings.EqualFold(c.User, "root") {
		return nil
	}
	u, err := user.Lookup(c.User)
	if err != nil {
		return fmt.Errorf("CMD_EXEC_USER %s: %w", c.User, err)
	}
	gidText := u.Gid
	if c.Group != "" {
		g, err := user.LookupGroup(c.Group)
		if err != nil {
			return fmt.Errorf("CMD_EXEC_GROUP %s: %w", c.Group, err)
		}
		gidText = g.Gid
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(gidText, 10, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("CMD_EXEC_USER %s: ids %s/%s are not numbers", c.User, u.Uid, gidText)
	}
	u32, g32 := uint32(uid), uint32(gid)
	st.cmdUID, st.cmdGID = &u32, &g32
	return nil
}

// commandOutcome is checkPolicy's verdict on a command message (type 0): refused without
// ENABLE_CMD_EXEC Y, and on a stanza with a command cycle (fwknopd tries the cycle there,
// cannot build it from a command message, and moves on); else accepted, the command being the
// text after the first comma.
func commandOutcome(st *stanza, m *spa.Message, allow netip.Addr) outcome {
	switch {
	case st.Cmd.CycleOpen != "":
		return outcome{reason: CommandRefused, detail: "command message to a stanza with CMD_CYCLE_OPEN"}
	case !st.Cmd.Exec:
		return outcome{reason: CommandRefused, detail: "ENABLE_CMD_EXEC is not Y"}
	}
	_, cmd, _ := strings.Cut(m.Message, ",")
	if _, err := cmdexec.Split(cmd); err != nil {
		return outcome{reason: BadAccess, detail: "empty command"}
	}
	return outcome{reason: Granted, allow: allow, command: cmd}
}

// runsCommand reports whether an accepted outcome of st runs a command instead of a firewall
// grant: a command message, or any accepted message on a stanza with CMD_CYCLE_OPEN.
func runsCommand(st *stanza, o outcome) bool { return o.command != "" || st.Cmd.CycleOpen != "" }

// command runs what an accepted outcome asks for instead of a firewall grant: the command of
// a command message, or the open command of the stanza's cycle (and schedules its close). The
// verdict is CommandAccepted once the command is queued (in test mode nothing runs),
// CommandBusy when the queue is full.
func (s *Server) command(ctx context.Context, p *compiled, st *stanza, pkt capture.Packet, now time.Time, m *spa.Message, o outcome) Result {
	if o.command != "" {
		return s.commandMessage(ctx, p, st, pkt, now, m, o)
	}
	return s.cycleOpen(ctx, p, st, pkt, now, m, o)
}

func (s *Server) commandMessage(ctx context.Context, p *compiled, st *stanza, pkt capture.Packet, now time.Time, m *spa.Message, o outcome) Result {
	argv, _ := cmdexec.Split(o.command) // commandOutcome checked it
	c := &st.Cmd
	if c.Sudo {
		exe := p.SudoExe
		if exe == "" {
			exe = defaultSudoExe
		}
		argv = cmdexec.SudoArgv(exe, notRoot(c.SudoUser), notRoot(c.SudoGroup), argv)
	}
	spec := cmdexec.Spec{Argv: argv, UID: st.cmdUID, GID: st.cmdGID, Timeout: cmdexec.DefaultTimeout}
	kind := "command"
	return s.submit(ctx, p, st, pkt, now, m, o.allow, kind, spec, nil)
}

func (s *Server) cycleOpen(ctx context.Context, p *compiled, st *stanza, pkt capture.Packet, now time.Time, m *spa.Message, o outcome) Result {
	c := &st.Cmd
	delay := c.CycleTimer
	if m.ClientTimeout > 0 { // fwknopd: the client's timeout, uncapped, else CMD_CYCLE_TIMER
		delay = time.Duration(m.ClientTimeout) * time.Second
	}
	vars := cmdexec.CycleVars{
		IP:            o.allow.String(),
		PktSrc:        pkt.Src.Addr().Unmap().String(),
		Dst:           "0.0.0.0",
		Timeout:       strconv.FormatInt(m.Timestamp+int64(delay/time.Second), 10), // fwknopd: an expiry time
		ClientTimeout: strconv.FormatUint(uint64(m.ClientTimeout), 10),
	}
	if d := pkt.Dst.Addr().Unmap(); d.IsValid() {
		vars.Dst = d.String()
	}
	if len(o.ports) > 0 { // fwknopd substitutes the first requested proto/port only
		vars.Port = strconv.Itoa(int(o.ports[0].Port))
		vars.Proto = strconv.Itoa(int(protoNum(o.ports[0].Proto)))
	}
	open, err := cmdexec.Split(cmdexec.Expand(c.CycleOpen, vars))
	if err != nil {
		return s.rejectCommand(p, pkt, now, st, BadAccess, "CMD_CYCLE_OPEN expands to nothing", nil)
	}
	var closing *cmdclose.Close
	if c.CycleClose != "" {
		argv, err := cmdexec.Split(cmdexec.Expand(c.CycleClose, vars))
		if err != nil {
			return s.rejectCommand(p, pkt, now, st, BadAccess, "CMD_CYCLE_CLOSE expands to nothing", nil)
		}
		closing = &cmdclose.Close{Stanza: st.Num, Src: o.allow.String(), Argv: argv, Due: now.Add(delay)}
	}
	spec := cmdexec.Spec{Argv: open, Timeout: cmdexec.DefaultTimeout}
	return s.submit(ctx, p, st, pkt, now, m, o.allow, "cycle-open", spec, closing)
}

// submit logs the accepted command, records the cycle's close (before the open runs, so a
// crash cannot lose it) and queues the command.
func (s *Server) submit(ctx context.Context, p *compiled, st *stanza, pkt capture.Packet, now time.Time, m *spa.Message,
	allow netip.Addr, kind string, spec cmdexec.Spec, closing *cmdclose.Close) Result {
	attrs := []slog.Attr{slog.String("src", pkt.Src.Addr().Unmap().String()), slog.Int("stanza", st.Num),
		slog.String("allow", allow.String()), slog.String("kind", kind), slog.String("cmd", strings.Join(spec.Argv, " ")),
		slog.String("user", m.Username), slog.Bool("test", p.TestMode)}
	if spec.UID != nil {
		attrs = append(attrs, slog.String("run_as", fmt.Sprintf("%s/%d:%d", st.Cmd.User, *spec.UID, *spec.GID)))
	}
	if closing != nil {
		attrs = append(attrs, slog.String("close", strings.Join(closing.Argv, " ")), slog.Duration("close_in", closing.Due.Sub(now)))
	}
	if p.TestMode { // fwknopd -t runs no command
		s.log.LogAttrs(ctx, slog.LevelInfo, "command accepted", attrs...)
		return Result{Reason: CommandAccepted, Stanza: st.Num}
	}
	if closing != nil {
		c, err := s.recordClose(*closing)
		if err != nil {
			return s.rejectCommand(p, pkt, now, st, InternalError, "", err)
		}
		closing = &c
	}
	err := s.cmds.Submit(spec, func(r cmdexec.Result) { s.logCommandDone(kind, st.Num, allow.String(), r) })
	if err != nil {
		if closing != nil && s.closes != nil {
			_ = s.closes.Done(closing.ID) // the open did not run: nothing to close
		}
		return s.rejectCommand(p, pkt, now, st, CommandBusy, "", err)
	}
	if closing != nil {
		s.scheduleClose(*closing)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "command accepted", attrs...)
	return Result{Reason: CommandAccepted, Stanza: st.Num}
}

func (s *Server) rejectCommand(p *compiled, pkt capture.Packet, now time.Time, st *stanza, r Reason, detail string, err error) Result {
	res := Result{Reason: r, Stanza: st.Num, Err: err}
	s.reject(p, pkt, now, res, detail)
	return res
}

// recordClose stores a pending close (in memory only without a CloseStore).
func (s *Server) recordClose(c cmdclose.Close) (cmdclose.Close, error) {
	if s.closes == nil {
		return c, nil
	}
	c, err := s.closes.Add(c)
	if err != nil {
		return c, fmt.Errorf("record CMD_CYCLE_CLOSE: %w", err)
	}
	return c, nil
}

// resumeCloses schedules the closes a previous run left pending (those due run at once).
func (s *Server) resumeCloses() {
	if s.closes == nil {
		return
	}
	pending := s.closes.Pending()
	if len(pending) > 0 && s.cmds == nil {
		s.log.Error("pending CMD_CYCLE_CLOSE commands, but no command runner: they stay pending", "count", len(pending))
		return
	}
	for _, c := range pending {
		s.log.Info("CMD_CYCLE_CLOSE pending from a previous run", "stanza", c.Stanza, "allow", c.Src,
			"cmd", strings.Join(c.Argv, " "), "due", c.Due.UTC().Format(time.RFC3339))
		s.scheduleClose(c)
	}
}

func (s *Server) scheduleClose(c cmdclose.Close) {
	s.afterFunc(max(c.Due.Sub(s.now()), 0), func() { s.runClose(c, 0) })
}

// runClose queues a due close; a full queue is retried every closeRetry.
func (s *Server) runClose(c cmdclose.Close, attempt int) {
	err := s.cmds.Submit(cmdexec.Spec{Argv: c.Argv, Timeout: cmdexec.DefaultTimeout}, func(r cmdexec.Result) {
		s.logCommandDone("cycle-close", c.Stanza, c.Src, r)
		if s.closes != nil {
			if err := s.closes.Done(c.ID); err != nil {
				s.log.Error("CMD_CYCLE_CLOSE ran but stays recorded (it will run again at the next start)", "err", err)
			}
		}
	})
	if err == nil {
		s.log.Info("CMD_CYCLE_CLOSE timer expired", "stanza", c.Stanza, "allow", c.Src, "cmd", strings.Join(c.Argv, " "))
		return
	}
	if attempt >= closeRetries {
		s.log.Error("CMD_CYCLE_CLOSE not run: the command queue stayed full; it runs at the next start",
			"stanza", c.Stanza, "allow", c.Src, "cmd", strings.Join(c.Argv, " "))
		return
	}
	if attempt == 0 {
		s.log.Warn("CMD_CYCLE_CLOSE waits: the command queue is full", "stanza", c.Stanza, "allow", c.Src)
	}
	s.afterFunc(closeRetry, func() { s.runClose(c, attempt+1) })
}

// maxOutputLog bounds the output logged with a finished command: its first lines, at most
// this many bytes.
const maxOutputLog = 240

// logCommandDone logs one line when a command finished: exit status, duration and the first
// line(s) of its output.
func (s *Server) logCommandDone(kind string, stanza int, allow string, r cmdexec.Result) {
	level := slog.LevelInfo
	if r.Err != nil {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("kind", kind), slog.Int("stanza", stanza), slog.String("allow", allow),
		slog.String("cmd", strings.Join(r.Argv, " ")), slog.Int("exit", r.Exit), slog.Duration("duration", r.Duration)}
	if out := firstLines(r.Output); out != "" {
		attrs = append(attrs, slog.String("output", out))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("err", r.Err.Error()))
	}
	s.log.LogAttrs(context.Background(), level, "command finished", attrs...)
}

// firstLines is the start of a command's output for the log: lines joined with " | ", cut at
// maxOutputLog bytes.
func firstLines(out []byte) string {
	t := strings.TrimSpace(string(out))
	if len(t) > maxOutputLog {
		t = t[:maxOutputLog] + "..."
	}
	return strings.ReplaceAll(t, "\n", " | ")
}

func notRoot(name string) string {
	if strings.EqualFold(name, "root") {
		return ""
	}
	return name
}
