"""The operator commands behind bin/ (and the nightshift-* console scripts): status, invalidate, approve, summary, scheduler."""
