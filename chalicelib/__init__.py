"""linklog: a save-it-for-later backend over an append-only log in an object store."""
