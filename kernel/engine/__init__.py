"""The event path: intake, matching, choosing, group commit, sinks and services."""
