package transport

// logFailure logs a failed connection attempt: the first failure and any
// change of reason at warning level, repeats at debug level, so that a long
// outage does not flood the log.
func logFailure(cfg DialerConfig, err, prev error, failures int) {
	msg := "cannot connect to server; retrying"
	if IsConfigError(err) {
		msg = "server refused by configuration; retrying"
	}
	if failures == 1 || prev == nil || prev.Error() != err.Error() {
		cfg.Logger.Warn(msg, "server", cfg.Server, "err", err, "attempts", failures)
		return
	}
	cfg.Logger.Debug(msg, "server", cfg.Server, "err", err, "attempts", failures)
}
