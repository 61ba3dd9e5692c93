"""statusflow's built-in trigger plugins, each found through its own entry point."""
