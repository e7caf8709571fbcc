package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

const sessionsUsage = `usage: qodwatch sessions COMMAND --config.file FILE [flags]

  list                               sessions in the state file, each checked with GET
  get ID                             one session as the API reports it
  create --ue NAME [--qos Q] [--duration D]
                                     open a session for a configured UE (recorded in the state file);
                                     refused while the UE holds a session or a create for it is open
  end ID | --ue NAME                 end a session of the state file and forget it

Flags:
  --config.file FILE   configuration file (default qodwatch.yaml)
  --state.dir DIR      override state_dir of the config

The commands share the daemon's state file, and work beside a running
daemon: a session made here is adopted by it, and its notifications come
to the daemon's receiver.
`

func cmdSessions(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, sessionsUsage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, sessionsUsage)
		return 0
	}
	sub := args[0]
	fs := flag.NewFlagSet("sessions "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config.file", "qodwatch.yaml", "configuration file")
	stateDir := fs.String("state.dir", "", "override state_dir of the config")
	ueName := fs.String("ue", "", "UE name (create, end)")
	qos := fs.String("qos", "", "QoS profile (create; default: the UE's rule)")
	duration := fs.String("duration", "", "session duration (create; default: the UE's rule)")
	// Flags may come before or after the session id.
	var positional []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, sessionsUsage)
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigError(stderr, *file, err)
		return 2
	}
	if *stateDir != "" {
		cfg.StateDir = *stateDir
	}
	if cfg.StateDir == "" {
		fmt.Fprintln(stderr, "qodwatch sessions: the config has no state_dir")
		return 2
	}
	store, err := daemon.OpenStateFile(cfg.StateDir)
	if err != nil {
		fmt.Fprintf(stderr, "qodwatch sessions: %v\n", err)
		return 1
	}
	client, err := daemon.NewClient(cfg.API)
	if err != nil {
		fmt.Fprintf(stderr, "qodwatch sessions: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tool := sessionTool{cfg: cfg, store: store, api: client, out: stdout}
	switch sub {
	case "list":
		err = tool.list(ctx)
	case "get":
		if len(positional) != 1 {
			err = errors.New("get takes one session id")
			break
		}
		err = tool.get(ctx, positional[0])
	case "create":
		err = tool.create(ctx, *ueName, *qos, *duration)
	case "end":
		if len(positional) > 1 || (len(positional) == 0) == (*ueName == "") {
			err = errors.New("end takes one session id or --ue NAME")
			break
		}
		id := ""
		if len(positional) == 1 {
			id = positional[0]
		}
		err = tool.end(ctx, id, *ueName)
	default:
		fmt.Fprint(stderr, sessionsUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "qodwatch sessions %s: %v\n", sub, err)
		return 1
	}
	return 0
}

type sessionTool struct {
	cfg   *config.Config
	store *daemon.StateFile
	api   *qodclient.Client
	out   io.Writer
}

func (t sessionTool) list(ctx context.Context) error {
	st, err := t.store.Load()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(t.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "UE\tSESSION\tQOS\tEXPIRES\tBY\tAT THE OPERATOR")
	for _, s := range st.Sessions {
		status := "live"
		// EXPIRES is the state file's, on this host's clock: the
		// operator's may differ.
		_, err := t.api.Get(ctx, s.ID)
		switch {
		case errors.Is(err, qodclient.ErrNotFound):
			status = "gone (the daemon forgets it at its next check)"
		case err != nil:
			status = "unchecked: " + err.Error()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.UE, s.ID, s.QoS, s.ExpiresAt.UTC().Format(time.RFC3339), s.Origin, status)
	}
	for _, in := range st.Intents {
		fmt.Fprintf(w, "%s\t(unknown: create answer lost, tx %s)\t%s\t%s\t%s\tpossibly held; nothing is bought for this UE until then\n",
			in.UE, in.TransactionID, in.QoS, in.Until.UTC().Format(time.RFC3339), in.Origin)
	}
	return w.Flush()
}

func (t sessionTool) get(ctx context.Context, id string) error {
	info, err := t.api.Get(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintln(t.out, info.String())
	return nil
}

// create records the intent first, like the daemon, so that a lost answer
// leaves the UE suspected rather than unknown.
func (t sessionTool) create(ctx context.Context, name, qos, duration string) error {
	ue, ok := t.cfg.UE(name)
	if !ok {
		return fmt.Errorf("no UE %q in %s", name, t.cfg.File)
	}
	if qos == "" {
		qos = ue.Rule.QoS
	}
	dur := ue.Rule.Duration
	if duration != "" {
		d, err := policy.ParseDuration(duration)
		if err != nil {
			return fmt.Errorf("--duration: %w", err)
		}
		dur = d
	}
	txid := qodclient.NewTransactionID()
	req, err := daemon.CreateRequestFor(t.cfg, ue, qos, int(dur/time.Second), txid)
	if err != nil {
		return err
	}
	now := time.Now()
	intent := daemon.Intent{UE: name, QoS: qos, Duration: int(dur / time.Second), TransactionID: txid,
		SentAt: now, Until: now.Add(dur + time.Minute), Origin: "cli"}
	// The check and the intent are one locked update: a create checked
	// against an older read could overtake the daemon's own create, or
	// another CLI's, and buy a second session for the UE.
	if _, err := t.store.Update(func(s *daemon.State) error {
		if x, ok := s.SessionFor(name); ok {
			return fmt.Errorf("UE %q holds session %s already (end it first)", name, x.ID)
		}
		if in, ok := s.OpenIntentFor(name, now); ok {
			return fmt.Errorf("UE %q may hold a session already: a create by %s (transaction %s) is in flight or its outcome is unknown; nothing is bought for this UE until %s",
				name, in.Origin, in.TransactionID, in.Until.UTC().Format(time.RFC3339))
		}
		s.Intents = append(s.Intents, intent)
		return nil
	}); err != nil {
		return err
	}
	info, err := t.api.Create(qodclient.WithTransactionID(ctx, txid), req)
	if err != nil {
		if errors.Is(err, qodclient.ErrUnknownOutcome) || errors.Is(err, qodclient.ErrConflict) {
			// As the daemon does: the session may exist, so the intent
			// stays and the UE counts as possibly holding one.
			return fmt.Errorf("%w; the UE counts as possibly holding a session until %s (its intent stays in the state file)",
				err, intent.Until.UTC().Format(time.RFC3339))
		}
		_, _ = t.store.Update(func(s *daemon.State) error { s.DropIntent(txid); return nil })
		return err
	}
	// Times on this host's clock, as the daemon keeps them.
	s := daemon.SessionOf(name, qos, dur, info, now, time.Now())
	s.TransactionID, s.Origin = txid, "cli"
	if _, err := t.store.Update(func(st *daemon.State) error { st.AddSession(s); return nil }); err != nil {
		return fmt.Errorf("session %s created but not recorded: %w", info.ID, err)
	}
	fmt.Fprintf(t.out, "created %s for %s: %s until %s\n", s.ID, name, s.QoS, s.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

func (t sessionTool) end(ctx context.Context, id, name string) error {
	st, err := t.store.Load()
	if err != nil {
		return err
	}
	if id == "" {
		s, ok := st.SessionFor(name)
		if !ok {
			return fmt.Errorf("no session recorded for UE %q", name)
		}
		id = s.ID
	} else if _, ok := st.SessionByID(id); !ok {
		// A typo must not end someone else's session, nor say "ended".
		return fmt.Errorf("no session %s in the state file %s (qodwatch sessions list shows them)", id, t.store.Path())
	}
	if err := t.api.Delete(ctx, id); err != nil {
		return err
	}
	if _, err := t.store.Update(func(s *daemon.State) error { s.RemoveSession(id); return nil }); err != nil {
		return err
	}
	fmt.Fprintf(t.out, "ended %s\n", id)
	return nil
}
