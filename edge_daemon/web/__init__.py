"""The daemon's small HTTP surfaces: the live view and the shared HTTP service base."""
