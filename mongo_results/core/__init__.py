"""The decisions: commands and replies, plans, and every operation as a generator, with no I/O."""
