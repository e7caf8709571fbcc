package daemon

// SetStateWriteFault makes every state file write of d fail with f's error
// (nil f: writes work again). For tests only: this file is not in the
// binary.
func SetStateWriteFault(d *Daemon, f func() error) {
	if f == nil {
		d.store.fault.Store(nil)
		return
	}
	d.store.fault.Store(&f)
}

// StateSyncs is how many times d has read the state file for what other
// processes recorded (syncFromStateFile).
func StateSyncs(d *Daemon) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}
