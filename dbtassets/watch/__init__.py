"""The watcher: file watching, backoff, the ticker, policy wake-ups, typed events, hooks."""
