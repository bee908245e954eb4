"""RQ jobs. Each takes ids, re-reads state from the database and builds its own clients."""
