package daemon

// Failpoints, in the order a session's life passes them. They kill the
// process only in a binary built with -tags qodwatch_failpoints.
const (
	fpAfterIntent = "after-intent" // intent durable, POST not sent
	fpAfterCreate = "after-create" // operator answered the POST, session not recorded
	fpAfterRecord = "after-record" // session recorded, policy not told
	fpBeforeEnd   = "before-delete"
	fpAfterEnd    = "after-delete" // operator ended it, state file still lists it
)
