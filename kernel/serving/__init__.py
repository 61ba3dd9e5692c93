"""How the process runs: configuration, logging, serving one or several workers."""
